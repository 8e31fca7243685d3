#!/usr/bin/env bash
# Installs the system packages plexus's demo and tests use, when running as
# root and they are missing. Harmless to run again.
#
# It never starts, stops, kills or disables a service that was installed or
# running before it ran (a containerd or etcd the user runs is left alone;
# the tests start their own on their own sockets and data dirs):
# - apt-get runs with a policy-rc.d that answers 101 ("action forbidden"),
#   so the packages' maintainer scripts start no service; the machine's own
#   policy-rc.d (Docker images ship one), if any, is put back afterwards,
#   also on failure.
# - A service of a package this run newly installed is disabled for the
#   next boot only (`systemctl disable`, never `--now`): Debian enables it,
#   and a boot-time etcd would hold the port the tests' etcd uses. It is
#   not running (policy-rc.d), so nothing is stopped.
# - Nothing is killed.
#
#   hack/deps.sh                      install what is missing
#   hack/deps.sh --demo               only what `make demo` needs (ip, ping)
#   hack/deps.sh --dry-run [pkg...]   print what it would do, change nothing;
#                                     the packages named are taken as missing
set -euo pipefail

dry_run=0
demo=0
pretend=()
if [ "${1:-}" = --demo ]; then
  demo=1
  shift
fi
if [ "${1:-}" = --dry-run ]; then
  dry_run=1
  shift
  pretend=("$@")
fi

# run runs a command that changes the machine, or prints it in a dry run.
run() {
  if [ $dry_run = 1 ]; then
    echo "would run: $*"
  else
    "$@"
  fi
}

# run_quiet is run with the command's output discarded.
run_quiet() {
  if [ $dry_run = 1 ]; then
    echo "would run: $*"
  else
    "$@" >/dev/null
  fi
}

# missing_packages prints the packages whose commands are missing.
missing_packages() {
  have() { command -v "$1" >/dev/null 2>&1; }
  have ip || echo iproute2
  have ping || echo iputils-ping
  [ $demo = 1 ] && return 0
  have openssl || echo openssl
  have etcd || [ -x /usr/bin/etcd ] || echo etcd-server
  have containerd || echo containerd
  have runc || echo runc
  [ -x /bin/busybox ] || echo busybox-static
  # nft: knftables (pkg/netpol's executor) runs it in pods' netns.
  have nft || [ -x /usr/sbin/nft ] || echo nftables
}

# service_of names the service a package installs (none: empty).
service_of() {
  case "$1" in
    etcd-server) echo etcd ;;
    containerd) echo containerd ;;
  esac
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

POLICY=/usr/sbin/policy-rc.d
policy_saved=""

# forbid_service_starts makes invoke-rc.d and deb-systemd-invoke refuse to
# start or stop anything until allow_service_starts restores the machine's
# policy-rc.d (or removes ours when there was none).
forbid_service_starts() {
  if [ -e "$POLICY" ] && [ $dry_run = 1 ]; then
    policy_saved="<a copy>"
    echo "would save $POLICY (the machine's own) to put it back afterwards"
  elif [ -e "$POLICY" ]; then
    policy_saved=$(mktemp)
    cp -p "$POLICY" "$policy_saved"
  fi
  trap allow_service_starts EXIT
  trap 'exit 1' INT TERM HUP # so that the EXIT trap restores it
  if [ $dry_run = 1 ]; then
    echo "would write $POLICY: exit 101 (no service is started or stopped during apt-get install)"
  else
    printf '#!/bin/sh\n# hack/deps.sh: no service starts during its apt-get install.\nexit 101\n' >"$POLICY"
    chmod 755 "$POLICY"
  fi
}

allow_service_starts() {
  trap - EXIT
  if [ -n "$policy_saved" ]; then
    run mv -f "$policy_saved" "$POLICY"
  else
    run rm -f "$POLICY"
  fi
}

main() {
  local need=() new=() p
  if [ $dry_run = 1 ] && [ ${#pretend[@]} -gt 0 ]; then
    need=("${pretend[@]}")
  else
    mapfile -t need < <(missing_packages)
  fi
  if [ ${#need[@]} -eq 0 ]; then
    [ $dry_run = 1 ] && echo "nothing to install"
    return 0
  fi
  if [ "$(id -u)" != 0 ] && [ $dry_run = 0 ]; then
    echo "missing packages (${need[*]}); run as root or install them" >&2
    return 1
  fi
  for p in "${need[@]}"; do
    installed "$p" || new+=("$p")
  done
  if [ $dry_run = 1 ]; then echo "would install: ${need[*]}"; else echo "installing: ${need[*]}"; fi
  export DEBIAN_FRONTEND=noninteractive
  forbid_service_starts
  run_quiet apt-get update -qq
  run_quiet apt-get install -y -qq --no-install-recommends "${need[@]}"
  allow_service_starts
  for p in "${need[@]}"; do
    local s
    s=$(service_of "$p")
    [ -n "$s" ] || continue
    if [ ${#new[@]} -eq 0 ] || [[ " ${new[*]} " != *" $p "* ]]; then
      echo "leaving service $s alone: package $p was installed before this run"
    elif [ ! -d /run/systemd/system ]; then
      echo "leaving service $s alone: no systemd (policy-rc.d kept it from starting)"
    else
      run_quiet systemctl disable "$s" 2>/dev/null || true
    fi
  done
}

main
