#!/usr/bin/env bash
# Makes sure the MariaDB and PostgreSQL servers the tests use answer on
# 127.0.0.1 (tests/unit/databases.py): a server that does not answer is
# installed from Debian's packages if missing and started.  A server this
# script installed is set up the way the tests reach it (MariaDB's root and
# PostgreSQL's postgres over 127.0.0.1 without a password: a test machine's
# setting); a server that was already there is never reconfigured.
# GLANCE_CLONE_TEST_MYSQL_URL / GLANCE_CLONE_TEST_POSTGRESQL_URL name other
# servers: then this script leaves that kind alone.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY="$ROOT/.venv/bin/python"

answers() {     # answers KIND: the tests' admin URL accepts a connection
  "$PY" - "$1" <<'PYEOF' >/dev/null 2>&1
import sys
import sqlalchemy as sa
sys.path.insert(0, '.')
from tests.unit import databases
engine = sa.create_engine(databases.SERVERS[sys.argv[1]],
                          poolclass=sa.pool.NullPool)
with engine.connect() as conn:
    conn.exec_driver_sql('SELECT 1')
PYEOF
}

if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else SUDO=none; fi

start_service() {   # start_service NAME
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    $SUDO systemctl start "$1"
  else
    $SUDO service "$1" start >/dev/null
  fi
}

as_postgres() {
  if [ -z "$SUDO" ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}

wait_answers() {    # wait_answers KIND
  for _ in $(seq 60); do answers "$1" && return 0; sleep 1; done
  return 1
}

ensure() {          # ensure KIND PACKAGE SERVICE
  local kind=$1 pkg=$2 service=$3 installed=0
  answers "$kind" && return 0
  local env_name="GLANCE_CLONE_TEST_${kind^^}_URL"
  if [ -n "${!env_name:-}" ]; then
    echo "test-databases: $kind at \$$env_name does not answer" >&2; return 1
  fi
  if [ "$SUDO" = none ]; then
    echo "test-databases: $kind does not answer on 127.0.0.1 (run as root or start it)" >&2
    return 1
  fi
  if ! dpkg -s "$pkg" >/dev/null 2>&1; then
    echo "test-databases: installing $pkg" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$pkg" >/dev/null
    installed=1
  fi
  echo "test-databases: starting $service" >&2
  start_service "$service"
  if [ $installed = 1 ]; then
    case $kind in
      mysql)
        # Debian's root logs in through the socket only; the tests use TCP.
        for _ in $(seq 30); do $SUDO mariadb -uroot -e 'SELECT 1' >/dev/null 2>&1 && break; sleep 1; done
        $SUDO mariadb -uroot -e "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
          GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;"
        ;;
      postgresql)
        local hba
        for _ in $(seq 30); do as_postgres psql -tAc 'SELECT 1' >/dev/null 2>&1 && break; sleep 1; done
        hba=$(as_postgres psql -tAc 'SHOW hba_file')
        $SUDO sed -i '1i host all postgres 127.0.0.1/32 trust' "$hba"
        as_postgres psql -tAc 'SELECT pg_reload_conf()' >/dev/null
        ;;
    esac
  fi
  if ! wait_answers "$kind"; then
    echo "test-databases: $kind still does not answer after starting $service" >&2
    return 1
  fi
}

cd "$ROOT"
rc=0
ensure mysql mariadb-server mariadb || rc=1
ensure postgresql postgresql postgresql || rc=1
exit $rc
