#!/usr/bin/env bash
# make demo: plexus in clusterless mode on this machine. Two pods (network
# namespaces), each with a bridge primary (eth0), a macvlan secondary on a
# veth uplink (net1) and a storage bridge with a static IP (net2), from the
# NAD files in deployments/examples/clusterless/. Runs plexus exactly as a
# container runtime does: CNI_* environment and the config on stdin.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=$ROOT/bin
EX=$ROOT/deployments/examples/clusterless
STATE=/var/lib/cni/plexus-demo
CONFDIR=$STATE/net.d
[ "$(id -u)" = 0 ] || { echo "make demo needs root (network namespaces)"; exit 1; }

bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
conf() {
  cat <<JSON
{"cniVersion":"1.1.0","name":"plexus","type":"plexus","clusterNetwork":"demo-primary",
 "confDir":"$CONFDIR","cniDir":"$STATE/cache","binDir":"$BIN/cni",
 "networksDir":"$EX","logFile":"$STATE/plexus.log","logLevel":"info"}
JSON
}
# cni CMD POD IP : run plexus for pod POD (netns plexus-demo-POD)
cni() {
  local cmd=$1 pod=$2 ip=${3:-}
  local nets='[{"name":"macvlan-data"},{"name":"storage","ips":["'"$ip"'/24"]}]'
  conf | CNI_COMMAND=$cmd CNI_CONTAINERID="demo-$pod" CNI_NETNS="/var/run/netns/plexus-demo-$pod" \
    CNI_IFNAME=eth0 CNI_PATH="$BIN/cni" \
    CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=$pod;K8S_POD_NETWORKS=$nets" \
    "$BIN/plexus"
}
cleanup() {
  for pod in a b; do
    [ -e "/var/run/netns/plexus-demo-$pod" ] && cni DEL $pod >/dev/null 2>&1 || true
    ip netns del "plexus-demo-$pod" 2>/dev/null || true
  done
  for l in pxdemo-up pxdemo-br pxdemo-st; do ip link del "$l" 2>/dev/null || true; done
}

bold "setting up: uplink veth pxdemo-up, two pods (netns plexus-demo-a, plexus-demo-b)"
cleanup
rm -rf "$STATE"; mkdir -p "$CONFDIR"
cp "$EX/primary.conflist" "$CONFDIR/10-demo.conflist"
ip link add pxdemo-up type veth peer name pxdemo-upp
ip link set pxdemo-up up; ip link set pxdemo-upp up
ip netns add plexus-demo-a; ip netns add plexus-demo-b

declare -A IP=([a]=10.66.30.11 [b]=10.66.30.12)
for pod in a b; do
  bold "ADD pod $pod  (plexus → bridge eth0, macvlan net1, storage net2 with static ${IP[$pod]})"
  echo "CNI result (the primary's): $(cni ADD $pod "${IP[$pod]}" | tr -d " \n" | grep -o '"address":"[^"]*"' | head -1)"
  bold "pod $pod: ip -br addr"
  ip -n "plexus-demo-$pod" -br addr
  bold "pod $pod: network-status"
  cat "$STATE/cache/containers/demo-$pod/network-status.json"; echo
done

bold "ping pod b's net2 (${IP[b]}) from pod a"
ip netns exec plexus-demo-a ping -c 3 -W 2 -I net2 "${IP[b]}"

for pod in a b; do
  bold "DEL pod $pod"
  cni DEL $pod
done
bold "what is left after DEL"
for pod in a b; do echo "pod $pod interfaces: $(ip -n plexus-demo-$pod -br link | grep -v '^lo ' | wc -l)"; done
echo "IPAM leases: $(find "$STATE/ipam" -type f ! -name 'last_reserved_ip*' ! -name lock 2>/dev/null | wc -l)"
echo "cache entries: $(ls "$STATE/cache/containers" 2>/dev/null | wc -l)"
cleanup
rm -rf "$STATE"
bold "demo done: every interface, IP and cache entry plexus made is gone"
