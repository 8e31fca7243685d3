#!/usr/bin/env bash
# Stages the nft command for the plexus image (plexusd's MultiNetworkPolicy
# enforcement execs it, docs/network-policy.md) from Debian 12 packages:
#   hack/nft-rootfs.sh DEST ARCH...   ->  DEST/linux_ARCH/ (the packages' files)
# hack/ociimage then takes from DEST/linux_ARCH only /usr/sbin/nft, its ELF
# interpreter and the shared libraries it needs (DT_NEEDED, transitively).
#
# The packages are pinned (PKGS below) so that the same versions, hence the
# same bytes, land in every build; apt checks them against the archive's
# signed indexes. The host is left alone: apt runs with a private
# configuration, package lists and cache under DEST/apt-ARCH (no
# `dpkg --add-architecture`, nothing installed), with the host's Debian
# sources (NFT_APT_SOURCES, default /etc/apt/sources.list.d/debian.sources)
# and keyrings. A finished DEST/linux_ARCH whose stamp lists the same
# packages is reused. When a pinned version leaves the archive (a security
# update), bump it here (`apt-cache policy PKG` shows the current one).
set -euo pipefail
dest=${1:?usage: hack/nft-rootfs.sh DEST ARCH...}
shift
[ $# -gt 0 ] || set -- "$(go env GOARCH)"
# nftables and its Depends closure (apt-cache depends), Debian 12 (bookworm).
PKGS=(
  nftables=1.0.6-2+deb12u2
  libnftables1=1.0.6-2+deb12u2
  libc6=2.36-9+deb12u14
  libedit2=3.1-20221030-2
  libgmp10=2:6.2.1+dfsg1-1.1
  libjansson4=2.14-2
  libmnl0=1.0.4-3
  libnftnl11=1.2.4-2
  libxtables12=1.8.9-2
  libbsd0=0.11.7-2
  libmd0=1.0.4-2
  libtinfo6=6.4-4
)
SOURCES=${NFT_APT_SOURCES:-/etc/apt/sources.list.d/debian.sources}
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
for arch in "$@"; do
  out=$dest/linux_$arch
  stamp="${PKGS[*]} ($arch)"
  if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$stamp" ]; then
    continue
  fi
  apt=$dest/apt-$arch
  rm -rf "$apt" "$out"
  mkdir -p "$apt/etc/apt.conf.d" "$apt/etc/preferences.d" "$apt/etc/sources.list.d" \
    "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/debs"
  cp "$SOURCES" "$apt/etc/sources.list.d/"
  : > "$apt/status"
  # A private apt: its own config dir (so the host's apt.conf.d is not
  # read), lists, cache and an empty dpkg status; only ARCH's indexes.
  cat > "$apt/apt.conf" <<CONF
Dir::Etc "$apt/etc";
Dir::Etc::Parts "$apt/etc/apt.conf.d";
Dir::Etc::main "$apt/apt.conf";
Dir::Etc::trusted "/etc/apt/trusted.gpg";
Dir::Etc::trustedparts "/etc/apt/trusted.gpg.d";
Dir::State::Lists "$apt/lists";
Dir::State::status "$apt/status";
Dir::Cache "$apt/cache";
APT::Architecture "$arch";
APT::Architectures { "$arch"; };
Acquire::Languages "none";
Acquire::IndexTargets::deb::DEP-11::DefaultEnabled "false";
Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled "false";
Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled "false";
APT::Sandbox::User "root";
CONF
  export APT_CONFIG=$apt/apt.conf
  echo "nft-rootfs: linux/$arch: apt-get update (private lists in $apt)"
  apt-get -qq update
  (cd "$apt/debs" && apt-get -qq download "${PKGS[@]}")
  unset APT_CONFIG
  mkdir -p "$out.tmp"
  for d in "$apt"/debs/*.deb; do
    dpkg-deb -x "$d" "$out.tmp"
  done
  echo "$stamp" > "$out.tmp/.stamp"
  mv "$out.tmp" "$out"
  rm -rf "$apt/lists" "$apt/cache"
done
