#!/usr/bin/env bash
# Builds plexus's container images as OCI image-layout tarballs, without a
# Docker engine, from the static binaries `make build` put in bin/:
#   hack/images.sh DEST   ->  DEST/plexus.tar, DEST/sriov-device-plugin.tar
# Load them with `ctr -n k8s.io images import DEST/plexus.tar` or
# `kind load image-archive DEST/plexus.tar`. With Docker, images/*/Dockerfile
# build the same images. IMAGE_TAG (default latest) sets the tag.
set -euo pipefail
dest=${1:?usage: hack/images.sh DEST}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
for b in plexus sriov plexus-install sriov-device-plugin; do
  if [ ! -x "bin/$b" ]; then
    echo "hack/images.sh: bin/$b is missing: run \`make build\` first" >&2
    exit 1
  fi
done
CGO_ENABLED=0 go run ./hack/ociimage --bin bin --out "$dest" --tag "${IMAGE_TAG:-latest}"
