#!/usr/bin/env bash
# The main job: a real clone between two local regions.
# Brings up the local cloud (ZooKeeper, Keystone, Glance RegionOne and
# RegionTwo), uploads a sample image to RegionOne as user "demo", clones it
# into RegionTwo with a progress bar, and finds the copy there by its hash.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
bash tools/bootstrap.sh
python3 tools/localcloud up
STATE=${LOCALCLOUD_DIR:-$ROOT/.localcloud}
CONF=$(python3 tools/write-clone-conf "$STATE/clone")
eval "$(python3 tools/localcloud env --user demo --region RegionOne)"
export PATH="$ROOT/.venv/bin:$PATH"
SIZE_MIB=${DEMO_IMAGE_MIB:-64}

echo; echo "== uploading a ${SIZE_MIB} MiB sample image to RegionOne as demo"
sample="$STATE/sample-image.raw"
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom > "$sample"
field() { awk -v k="$1" '$2==k {print $4}'; }
src=$(glance image-create --name "demo-sample-$(date +%H%M%S)" --disk-format raw \
      --container-format bare --property os_distro=debian --property hw_disk_bus=scsi \
      --file "$sample" < /dev/null | field id)
rm -f "$sample"
glance image-show "$src" | grep -E ' (id|name|status|size|os_hash_value|os_distro) '

echo; echo "== cloning $src from RegionOne into RegionTwo"
clone-manage --config-file "$CONF" clone --source-region RegionOne --image "$src" \
  --target-region RegionTwo
hash=$(glance image-show "$src" | field os_hash_value)

echo; echo "== the copy, found in RegionTwo by its os_hash_value"
OS_REGION_NAME=RegionTwo glance image-list --hash "$hash"
