package daemon

import (
	"context"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	plexuscache "github.com/plexus-cni/plexus/pkg/cache"
	"github.com/plexus-cni/plexus/pkg/k8s"
	"github.com/plexus-cni/plexus/pkg/podnet"
	"github.com/plexus-cni/plexus/pkg/policysync"
)

// newPolicySyncer builds MultiNetworkPolicy enforcement (pkg/policysync)
// on plexusd's credentials (its requests counted with the others), its cache and its metrics registry; Warning
// Events go through plexusd's client.
func newPolicySyncer(cfg *rest.Config, cl *k8s.Client, opts Options, m *Metrics) (*policysync.Syncer, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "plexusd"
	cfg.Wrap(m.WrapTransport()) // in plexus_api_requests_total
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return policysync.New(policysync.Options{
		Client: cs, Dynamic: dyn, Cache: plexuscache.Store{Dir: opts.CNIDir}, Log: opts.Log,
		Metrics: policysync.NewMetrics(m.Registry),
		Warn: func(namespace, name, reason, message string) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = cl.Warn(ctx, &podnet.Pod{Namespace: namespace, Name: name}, reason, message)
		},
	}), nil
}
