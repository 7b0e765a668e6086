#!/usr/bin/env bash
# Builds the documentation (doc/source -> doc/build/html) with warnings as
# errors: a warning fails this command, and with it tools/test.sh.
# Needs the product's virtualenv with doc/requirements.txt
# (tools/bootstrap.sh installs both).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SPHINX_BUILD=${SPHINX_BUILD:-.venv/bin/sphinx-build}
[ -x "$SPHINX_BUILD" ] || SPHINX_BUILD=sphinx-build
exec "$SPHINX_BUILD" -W --keep-going -q -b html doc/source doc/build/html "$@"
