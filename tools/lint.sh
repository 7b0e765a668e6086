#!/usr/bin/env bash
# Style gate: flake8 with OpenStack's hacking rules (configuration in
# tox.ini's [flake8] section); zero findings or it fails.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
.venv/bin/flake8 clone_flows conductor tests bench tools doc/source/conf.py
