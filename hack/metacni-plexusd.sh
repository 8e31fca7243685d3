#!/usr/bin/env bash
# META_DAEMON driver of ../shared/metacni-bench for plexusd: bench-k8s.sh
# runs `$0 start|stop` inside the bench's host netns with PLUGIN_TOKEN, PKI,
# WORK, PFX, CNI_BIN_DIR and NODE_NAME exported. plexusd gets the bench's
# plugin user (a kubeconfig made from its token), the bench's cniDir and a
# socket under $WORK; the shim side is the plexus binary with
#   META_EXTRA='{"daemonSocket":"'$WORK'/plexusd/plexusd.sock"}'
# (plexus-thin must sit beside it, as `make build` leaves it). Its peak RSS
# is recorded in $WORK/plexusd/peak-rss.txt (KEEP_WORK=1 keeps it).
set -eu
D=$WORK/plexusd
case $1 in
start)
  : "${PLEXUSD_BIN:?set PLEXUSD_BIN (bin/plexusd)}"
  mkdir -p "$D"
  cat > "$D/kubeconfig" <<K
apiVersion: v1
kind: Config
clusters: [{name: bench, cluster: {server: "https://127.0.0.1:6443", certificate-authority: "$PKI/ca.crt"}}]
users: [{name: plugin, user: {token: "$PLUGIN_TOKEN"}}]
contexts: [{name: bench, context: {cluster: bench, user: plugin}}]
current-context: bench
K
  chmod 600 "$D/kubeconfig"
  # The host netns is the bench's own: a fixed metrics port is free there.
  setsid "$PLEXUSD_BIN" --kubeconfig "$D/kubeconfig" --node-name "$NODE_NAME" --socket "$D/plexusd.sock" \
    --cni-dir "$WORK/cache" --bin-dir "$CNI_BIN_DIR" --cni-config - --metrics-address 127.0.0.1:19555 \
    --log-level "${PLEXUSD_LOG_LEVEL:-error}" > "$D/out" 2>&1 < /dev/null &
  echo $! > "$D/pid"
  for _ in $(seq 300); do
    curl -sf http://127.0.0.1:19555/readyz > /dev/null 2>&1 && exit 0
    sleep 0.1
  done
  echo "plexusd did not become ready: $(tail -5 "$D/out")" >&2; exit 1 ;;
stop)
  if [ -f "$D/pid" ]; then
    p=$(cat "$D/pid")
    grep -s VmHWM "/proc/$p/status" > "$D/peak-rss.txt" || true
    curl -s http://127.0.0.1:19555/metrics > "$D/metrics.txt" 2>/dev/null || true
    kill "$p" 2>/dev/null || true
  fi
  exit 0 ;;
esac
