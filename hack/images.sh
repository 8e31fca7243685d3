#!/usr/bin/env bash
# Builds plexus's container images as OCI image-layout tarballs, without a
# Docker engine, from static binaries:
#   hack/images.sh DEST [ARCH=BINDIR ...]
#     ->  DEST/plexus.tar, DEST/sriov-device-plugin.tar
# Each tarball holds ghcr.io/plexus-cni/<image>:$IMAGE_TAG as an OCI image
# index with one linux/ARCH image per ARCH=BINDIR (default: the host's
# architecture from bin/, as `make build` leaves it). `make images`
# cross-compiles for amd64 and arm64 and sets IMAGE_TAG to $(VERSION);
# without it, the tag is the VERSION file's release. The plexus image also
# holds nft (plexusd --network-policy runs it) and its libraries, from
# Debian 12 packages that hack/nft-rootfs.sh stages per ARCH in $NFT_DIR
# (default bin/nft; fetched from the Debian archive once, then cached).
# Load them with `ctr -n k8s.io images import DEST/plexus.tar` or
# `kind load image-archive DEST/plexus.tar`. With Docker, images/*/Dockerfile
# build the same images (one architecture).
set -euo pipefail
dest=${1:?usage: hack/images.sh DEST [ARCH=BINDIR ...]}
shift
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if [ $# -eq 0 ]; then
  set -- "$(go env GOARCH)=bin"
fi
tag=${IMAGE_TAG:-$(cat VERSION)}
nft=${NFT_DIR:-bin/nft}
args=()
archs=()
for p in "$@"; do
  arch=${p%%=*} dir=${p#*=}
  if [ "$arch" = "$p" ] || [ -z "$arch" ] || [ -z "$dir" ]; then
    echo "hack/images.sh: $p: want ARCH=BINDIR" >&2
    exit 2
  fi
  for b in plexus plexus-thin plexusd sriov passthru plexus-install sriov-device-plugin sriov-dra-driver; do
    if [ ! -x "$dir/$b" ]; then
      echo "hack/images.sh: $dir/$b (linux/$arch) is missing: run \`make images\` (or \`make build\` for the host's)" >&2
      exit 1
    fi
  done
  args+=(--platform "$arch=$dir" --nft "$arch=$nft/linux_$arch")
  archs+=("$arch")
done
hack/nft-rootfs.sh "$nft" "${archs[@]}"
CGO_ENABLED=0 go run ./hack/ociimage --out "$dest" --tag "$tag" "${args[@]}"
