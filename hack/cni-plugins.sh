#!/usr/bin/env bash
# Installs the reference CNI plugins of containernetworking/plugins into $1.
set -euo pipefail
dest=${1:?usage: cni-plugins.sh DEST}
ver=${CNI_PLUGINS_VERSION:-v1.9.1}
mod=github.com/containernetworking/plugins
plugins=(main/bridge main/macvlan main/ptp main/host-device main/tap main/loopback
         ipam/host-local ipam/static meta/tuning meta/portmap meta/bandwidth)
mkdir -p "$dest"
stamp="$dest/.version"
missing=0
for p in "${plugins[@]}"; do [ -x "$dest/$(basename "$p")" ] || missing=1; done
if [ "$missing" = 0 ] && [ "$(cat "$stamp" 2>/dev/null)" = "$ver" ]; then exit 0; fi
echo "installing reference CNI plugins $ver into $dest"
pkgs=()
for p in "${plugins[@]}"; do pkgs+=("$mod/plugins/$p@$ver"); done
GOBIN="$dest" CGO_ENABLED=0 GOFLAGS=-buildvcs=false go install "${pkgs[@]}"
echo "$ver" >"$stamp"
