# Shared settings of the kind e2e scripts (sourced).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=${PLEXUS_E2E_WORK:-$ROOT/e2e/kind/.work}
CLUSTER=${KIND_CLUSTER_NAME:-plexus-e2e}
KUBECONFIG_FILE=$WORK/kubeconfig
IMAGES=${PLEXUS_E2E_IMAGES:-$ROOT/bin/images}
# Reference plugins the example NADs and scenarios use; kind's nodes ship
# only ptp, host-local, portmap and loopback.
REF_PLUGINS="bridge macvlan static tuning host-local"
kc() { kubectl --kubeconfig "$KUBECONFIG_FILE" "$@"; }
log() { echo "[e2e-kind] $*" >&2; }
need() {
  for b in "$@"; do
    command -v "$b" >/dev/null || { log "$b not found: the kind e2e needs docker, kind and kubectl"; exit 1; }
  done
}
