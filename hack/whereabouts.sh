#!/usr/bin/env bash
# Installs whereabouts (the cluster-wide IPAM plugin) into $1 from the Go
# module proxy at a pinned version: the CNI binary as $1/whereabouts and its
# CRDs (IPPool, OverlappingRangeIPReservation, NodeSlicePool) under
# $1/whereabouts-crds/, which the node e2e applies to its apiserver.
#
# `go install …/cmd@v` is refused (whereabouts' go.mod has a replace
# directive, and its main package is the module's cmd/ directory), so the
# module is downloaded and built in place with its own go.mod and go.sum.
set -euo pipefail
dest=${1:?usage: whereabouts.sh DEST}
ver=${WHEREABOUTS_VERSION:-v0.9.2}
mod=github.com/k8snetworkplumbingwg/whereabouts
stamp="$dest/.whereabouts-version"
crds="$dest/whereabouts-crds"
mkdir -p "$dest"
if [ -x "$dest/whereabouts" ] && [ -d "$crds" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$ver" ]; then exit 0; fi
echo "installing whereabouts $ver into $dest"
# Outside any module: the download touches no go.mod.
dir=$(cd / && GOFLAGS= go mod download -json "$mod@$ver" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
[ -d "$dir" ] || { echo "whereabouts.sh: go mod download $mod@$ver gave no directory" >&2; exit 1; }
tmp="$dest/.whereabouts.tmp"
(cd "$dir" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false \
  go build -trimpath -ldflags "-s -w -X $mod/pkg/version.Version=$ver -X $mod/pkg/version.ReleaseStatus=released" -o "$tmp" ./cmd)
mv -f "$tmp" "$dest/whereabouts"
rm -rf "$crds" && mkdir -p "$crds"
cp "$dir"/doc/crds/whereabouts.cni.cncf.io_*.yaml "$crds/"
chmod 0644 "$crds"/*.yaml
echo "$ver" >"$stamp"
