#!/usr/bin/env bash
# Installs the system packages plexus's demo and tests use, when running as
# root and they are missing. Harmless to run again.
set -euo pipefail
need=()
have() { command -v "$1" >/dev/null 2>&1; }
have ip || need+=(iproute2)
have ping || need+=(iputils-ping)
have openssl || need+=(openssl)
have etcd || [ -x /usr/bin/etcd ] || need+=(etcd-server)
have containerd || need+=(containerd)
have runc || need+=(runc)
[ -x /bin/busybox ] || need+=(busybox-static)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "missing packages (${need[*]}); run as root or install them" >&2
  exit 1
fi
echo "installing: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian starts these as services; the tests run their own.
for s in etcd containerd; do
  systemctl disable --now "$s" >/dev/null 2>&1 || true
  pkill -x "$s" 2>/dev/null || true
done
