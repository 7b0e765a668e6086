#!/usr/bin/env bash
# The main job: a real clone between two local regions, the way a user does it.
# Brings up the local cloud (ZooKeeper, Keystone, Glance RegionOne and
# RegionTwo), glance-clone's API and two conductors; uploads a sample image to
# RegionOne as user "demo"; clones it into RegionTwo with the real
# `glance task-create --type clone`; follows the task until it ends; and finds
# the copy in RegionTwo by its hash.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
bash tools/bootstrap.sh
python3 tools/localcloud up
tools/clone-services up
STATE=${LOCALCLOUD_DIR:-$ROOT/.localcloud}
eval "$(python3 tools/localcloud env --user demo --region RegionOne)"
export PATH="$ROOT/.venv/bin:$PATH"
export OS_IMAGE_API_VERSION=2     # the glance CLI: no version discovery
API=http://127.0.0.1:${CLONE_API_PORT:-9393}
SIZE_MIB=${DEMO_IMAGE_MIB:-64}
field() { awk -v k="$1" '$2==k {print $4}'; }

echo; echo "== uploading a ${SIZE_MIB} MiB sample image to RegionOne as demo"
sample="$STATE/sample-image.raw"
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom > "$sample"
src=$(glance image-create --name "demo-sample-$(date +%H%M%S)" --disk-format raw \
      --container-format bare --property os_distro=debian --property hw_disk_bus=scsi \
      --file "$sample" < /dev/null | field id)
hash=$(sha512sum "$sample" | cut -d' ' -f1)     # what Glance's os_hash_value must be
rm -f "$sample"
glance image-show "$src" | grep -E ' (id|name|status|size|os_distro) '
echo "sha512 of the uploaded bits: $hash"

echo; echo "== glance task-create --type clone (RegionOne -> RegionTwo)"
export OS_REGION_NAME=RegionTwo
out=$(glance --os-image-url "$API" task-create --type clone \
      --input "{\"source_region\": \"RegionOne\", \"source_image_id\": \"$src\"}")
echo "$out"
task=$(echo "$out" | field id)

echo; echo "== following task $task"
while true; do
  show=$(glance --os-image-url "$API" task-show "$task")
  status=$(echo "$show" | field status)
  progress=$(echo "$show" | awk -F'|' '$2 ~ /^ *result *$/ {print $3}' | \
             grep -o '"percent": [0-9.]*' | head -1 || true)
  echo "$(date +%T)  $status  ${progress}"
  case "$status" in success|failure) break ;; esac
  sleep 1
done
echo "$show"
[ "$status" = success ] || { echo "the clone failed" >&2; exit 1; }

echo; echo "== the copy, found in RegionTwo by its os_hash_value"
glance image-list --hash "$hash"
echo
echo "glance-clone's API and conductors keep running: tools/clone-services down;"
echo "the local cloud: python3 tools/localcloud down"
