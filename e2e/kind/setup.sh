#!/usr/bin/env bash
# Creates a kind cluster with plexus deployed as it would be on any cluster:
# the images from `make images` loaded, deployments/crd.yaml and
# deployments/plexus.yaml applied, the DaemonSet rolled out, the example
# macvlan and bridge NADs and pods applied and Running.
#   e2e/kind/setup.sh            (KIND_NODE_IMAGE=kindest/node:vX to pin)
source "$(dirname "$0")/lib.sh"
need docker kind kubectl
mkdir -p "$WORK"
for img in plexus sriov-device-plugin; do
  [ -f "$IMAGES/$img.tar" ] || { log "$IMAGES/$img.tar missing: run make images"; exit 1; }
done
for p in $REF_PLUGINS; do
  [ -x "$ROOT/bin/cni/$p" ] || { log "bin/cni/$p missing: run make cni-plugins"; exit 1; }
done

if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  log "reusing kind cluster $CLUSTER"
else
  log "creating kind cluster $CLUSTER"
  kind create cluster --name "$CLUSTER" --config "$ROOT/e2e/kind/kind-config.yaml" \
    ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"} --wait 3m
fi
kind get kubeconfig --name "$CLUSTER" > "$KUBECONFIG_FILE"

log "installing reference plugins ($REF_PLUGINS) on every node"
for node in $(kind get nodes --name "$CLUSTER"); do
  for p in $REF_PLUGINS; do
    docker cp "$ROOT/bin/cni/$p" "$node:/opt/cni/bin/$p"
  done
done

log "loading images"
for img in plexus sriov-device-plugin; do
  kind load image-archive "$IMAGES/$img.tar" --name "$CLUSTER"
done

log "deploying plexus"
kc apply -f "$ROOT/deployments/crd.yaml"
kc wait --for=condition=Established crd/network-attachment-definitions.k8s.cni.cncf.io --timeout=60s
kc apply -f "$ROOT/deployments/plexus.yaml"
kc -n kube-system rollout status daemonset/plexus --timeout=3m
# plexus-install has written 00-plexus.conflist on every node.
for node in $(kind get nodes --name "$CLUSTER"); do
  docker exec "$node" test -f /etc/cni/net.d/00-plexus.conflist \
    || { log "$node: no /etc/cni/net.d/00-plexus.conflist"; kc -n kube-system logs daemonset/plexus >&2; exit 1; }
done

if [ "${PLEXUS_E2E_SRIOV:-0}" = 1 ]; then
  log "deploying the SR-IOV device plugin"
  kc apply -f "$ROOT/deployments/sriov-device-plugin.yaml"
  kc -n kube-system rollout status daemonset/plexus-sriov-device-plugin --timeout=3m
fi

log "applying the example NADs and pods"
kc apply -f "$ROOT/deployments/examples/macvlan.yaml" -f "$ROOT/deployments/examples/bridge.yaml"
kc wait --for=condition=Ready pod/macvlan-pod pod/bridge-pod --timeout=3m
for pod in macvlan-pod bridge-pod; do
  kc get pod "$pod" -o jsonpath='{.metadata.annotations.k8s\.v1\.cni\.cncf\.io/network-status}' | grep -q '"default": *true' \
    || { log "$pod has no network-status"; exit 1; }
done
log "cluster $CLUSTER ready; KUBECONFIG=$KUBECONFIG_FILE"
