#!/usr/bin/env bash
# The kind e2e (make e2e-kind): set up a kind cluster with plexus deployed
# (setup.sh), then run the e2e scenarios of e2e/scenarios — the same code
# the local node e2e runs in make test — against it, then delete the
# cluster. Needs docker, kind, kubectl and `make images cni-plugins`.
#   PLEXUS_E2E_KEEP=1    keep the cluster afterwards
#   PLEXUS_E2E_RUN=re    only scenarios matching re (go test -run)
source "$(dirname "$0")/lib.sh"
need docker kind kubectl go
cleanup() {
  if [ "${PLEXUS_E2E_KEEP:-0}" != 1 ]; then
    log "deleting kind cluster $CLUSTER"
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT
"$ROOT/e2e/kind/setup.sh"
log "running the e2e scenarios"
cd "$ROOT"
PLEXUS_E2E_KUBECONFIG="$KUBECONFIG_FILE" \
PLEXUS_E2E_KUBECTL="$(command -v kubectl)" \
PLEXUS_E2E_IMAGE="${PLEXUS_E2E_IMAGE:-busybox:1.36}" \
PLEXUS_E2E_MACVLAN_MASTER="${PLEXUS_E2E_MACVLAN_MASTER:-eth0}" \
  go test -count=1 -v -timeout 30m ./e2e/scenarios -run "TestOnCluster${PLEXUS_E2E_RUN:+/$PLEXUS_E2E_RUN}"
