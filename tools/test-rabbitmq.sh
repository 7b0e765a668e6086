#!/usr/bin/env bash
# Makes sure the RabbitMQ broker the notification tests use answers
# (tests/functional/test_notifications.py: GLANCE_CLONE_TEST_RABBITMQ_URL,
# default guest on 127.0.0.1:5672): a broker that does not answer is
# installed from Debian's rabbitmq-server package if missing and started.
# Debian's broker lets `guest` (password guest) in from localhost only, which
# is how the tests reach it; a broker that was already there is never
# reconfigured.  With GLANCE_CLONE_TEST_RABBITMQ_URL set this script only
# checks that broker.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY="$ROOT/.venv/bin/python"

answers() {     # the tests' broker accepts an AMQP connection
  "$PY" - <<'PYEOF' >/dev/null 2>&1
import os
import kombu
url = os.environ.get('GLANCE_CLONE_TEST_RABBITMQ_URL',
                     'rabbit://guest:guest@127.0.0.1:5672/')
with kombu.Connection('amqp://' + url.split('://', 1)[1],
                      connect_timeout=5) as conn:
    conn.ensure_connection(max_retries=1)
PYEOF
}

answers && exit 0
if [ -n "${GLANCE_CLONE_TEST_RABBITMQ_URL:-}" ]; then
  echo "test-rabbitmq: the broker at \$GLANCE_CLONE_TEST_RABBITMQ_URL does not answer" >&2
  exit 1
fi
if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
  echo "test-rabbitmq: RabbitMQ does not answer on 127.0.0.1:5672 (run as root or start it)" >&2
  exit 1
fi
if ! dpkg -s rabbitmq-server >/dev/null 2>&1; then
  echo "test-rabbitmq: installing rabbitmq-server" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq rabbitmq-server >/dev/null
fi
echo "test-rabbitmq: starting rabbitmq-server" >&2
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  $SUDO systemctl start rabbitmq-server
else
  $SUDO service rabbitmq-server start >/dev/null
fi
for _ in $(seq 90); do answers && exit 0; sleep 1; done
echo "test-rabbitmq: RabbitMQ still does not answer after starting it" >&2
exit 1
