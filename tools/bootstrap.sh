#!/usr/bin/env bash
# Installs what glance-clone needs on a fresh Debian 12: system packages and
# the product's virtualenv (.venv), with what the tests and the docs build
# (doc/requirements.txt) need.  Idempotent and quick the second time.
# (The local cloud's own virtualenv is made by tools/localcloud.)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

need_pkgs=()
# graphviz: the "dot" program clone-manage flow graph draws with;
# iproute2 and socat: the partition tests' network namespaces;
# ceph-*, python3-rbd/rados: the local cloud's Ceph clusters and the RBD
# strategy's bindings (LOCALCLOUD_CEPH, clone_flows/stores/rbd.py).
for pkg in python3-venv zookeeper graphviz iproute2 socat ceph-mon ceph-osd \
           ceph-common python3-rbd python3-rados; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_pkgs+=("$pkg")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "bootstrap: missing Debian packages: ${need_pkgs[*]} (run as root or install them)" >&2; exit 1; fi
  echo "bootstrap: installing ${need_pkgs[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 \
    install -y -qq "${need_pkgs[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
stamp=.venv/.glance-clone-installed
want=$(cat setup.cfg pyproject.toml doc/requirements.txt | sha1sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: installing the product into .venv" >&2
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -e '.[test]' \
    -r doc/requirements.txt 2>&1 \
    | grep -v -E '^(WARNING: Location|  )' >&2 || true
  .venv/bin/python -c 'import clone_flows, conductor, taskflow, kazoo, sphinx'
  echo "$want" > "$stamp"
fi

# Ceph's rados/rbd Python bindings are Debian's (built for Python 3.11, not on
# PyPI): link just those two modules into .venv.
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
for so in /usr/lib/python3/dist-packages/rados.cpython-*.so \
          /usr/lib/python3/dist-packages/rbd.cpython-*.so; do
  [ -e "$so" ] && ln -sfn "$so" "$site/$(basename "$so")"
done
.venv/bin/python -c 'import rados, rbd' 2>/dev/null || \
  echo "bootstrap: the Ceph Python bindings do not load in .venv (the RBD strategy will say so)" >&2
