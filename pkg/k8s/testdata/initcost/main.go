// Command initcost does nothing but import pkg/k8s (build tag podresources:
// also pkg/podresources; tag baseline: nothing), to measure the start-up cost
// plexus pays on every exec for Kubernetes mode. BenchmarkExecStartup runs
// it; for the package-init part alone:
//
//	go build -o /tmp/initcost ./pkg/k8s/testdata/initcost
//	GODEBUG=inittrace=1 /tmp/initcost 2>&1 | awk '{ms+=$5} END {print ms " ms"}'
package main

func main() {}
