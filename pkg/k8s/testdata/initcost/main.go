// Command initcost imports pkg/k8s (and with -tags podresources also
// pkg/podresources) and does nothing else, to measure the package-init cost
// plexus pays on every exec for Kubernetes mode:
//
//	go build -o /tmp/initcost ./pkg/k8s/testdata/initcost
//	GODEBUG=inittrace=1 /tmp/initcost 2>&1 | awk '{ms+=$5} END {print ms " ms"}'
package main

import _ "github.com/plexus-cni/plexus/pkg/k8s"

func main() {}
