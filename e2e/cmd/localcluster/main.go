// Command localcluster starts (up) or stops (down) plexus's local test
// cluster — etcd, kube-apiserver and a kubelet + containerd node — in the
// background, with its state under bin/cluster/. `make cluster-up` and
// `make cluster-down` run it.
package main

import (
	"fmt"
	"os"

	"github.com/plexus-cni/plexus/e2e/cluster"
)

func main() {
	if len(os.Args) != 2 || (os.Args[1] != "up" && os.Args[1] != "down") {
		fmt.Fprintln(os.Stderr, "usage: localcluster up|down")
		os.Exit(2)
	}
	run := cluster.LocalUp
	if os.Args[1] == "down" {
		run = cluster.LocalDown
	}
	if err := run(os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "localcluster %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
