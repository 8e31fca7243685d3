package k8s_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/plexus-cni/plexus/pkg/k8s"
	"github.com/plexus-cni/plexus/pkg/podnet"
)

// BenchmarkADD measures what one plexus ADD costs on the API against the
// real kube-apiserver, as the plexus ServiceAccount: "lookup" is Load + pod
// GET + one NAD lookup per attachment (all in one namespace); "add" also
// writes network-status and the Event. Each iteration is a new Client with
// its own connection, as every exec is. requests/op is the number of HTTP
// requests sent.
func BenchmarkADD(b *testing.B) {
	e := newEnv(b)
	kc, err := e.cp.ServiceAccountKubeconfig(plexusNS, plexusSA)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for _, n := range []int{1, 4, 8} {
		ns := e.namespace(b)
		created := e.createPod(b, ns, "web", nil)
		for i := 0; i < n; i++ {
			e.createNAD(b, ns, fmt.Sprintf("net%d", i), nadConfig(fmt.Sprintf("n%d", i)), nil)
		}
		ref := podnet.PodRef{Namespace: ns, Name: "web", UID: string(created.UID)}
		status := testStatus(ns)
		for _, write := range []bool{false, true} {
			name := fmt.Sprintf("lookup/attachments=%d", n)
			if write {
				name = fmt.Sprintf("add/attachments=%d", n)
			}
			b.Run(name, func(b *testing.B) {
				requests := 0
				for b.Loop() {
					c, err := k8s.Load(kc, k8s.Options{})
					if err != nil {
						b.Fatal(err)
					}
					pod, err := c.Pods().Pod(ctx, ref)
					if err != nil {
						b.Fatal(err)
					}
					for i := 0; i < n; i++ {
						if _, err := c.NADs().NAD(ctx, ns, fmt.Sprintf("net%d", i)); err != nil {
							b.Fatal(err)
						}
					}
					if write {
						if err := c.Status().Attached(ctx, pod, "ctr", status); err != nil {
							b.Fatal(err)
						}
					}
					requests += c.Requests()
					c.Close()
				}
				b.ReportMetric(float64(requests)/float64(b.N), "requests/op")
			})
		}
	}
}
