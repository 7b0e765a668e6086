#!/usr/bin/env bash
# Builds the documentation (tools/docs.sh, warnings are errors), then runs
# every test: unit tests (seconds) and functional tests against the real
# local cloud, which the test session brings up (and down, if it started it),
# MariaDB and PostgreSQL (started, or installed, by tools/test-databases.sh)
# and RabbitMQ (tools/test-rabbitmq.sh).  In this command a database server
# or broker that does not answer fails its tests instead of skipping them.
# Extra arguments go to pytest, e.g. `tools/test.sh tests/unit`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
bash tools/bootstrap.sh
bash tools/lint.sh         # the style gate first: any flake8 finding fails the command
bash tools/docs.sh         # then the documentation: a Sphinx warning fails the command
bash tools/test-databases.sh
bash tools/test-rabbitmq.sh
export GLANCE_CLONE_TEST_REQUIRE_DATABASES=1
export GLANCE_CLONE_TEST_REQUIRE_RABBITMQ=1
set +e
.venv/bin/python -m pytest -ra "${@:-tests}"
rc=$?
set -e
if [ $rc -eq 5 ]; then echo "test.sh: pytest ran no tests" >&2; fi
exit $rc
