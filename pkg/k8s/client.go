// Package k8s is plexus's Kubernetes mode: the pod, its
// NetworkAttachmentDefinitions, and the network-status and Events written
// back, all from the kube-apiserver named by a kubeconfig.
//
// plexus is exec'd for every pod ADD and DEL, so the package keeps its
// start-up small: pods and Events go through a rest.RESTClient over a scheme
// holding only core/v1 Pod and Event (protobuf on the wire), NADs through the
// NAD client's typed client, and the kubeconfig is parsed here instead of
// through clientcmd. An ADD costs one pod GET, one NAD LIST per namespace,
// one status PATCH and one Event.
package k8s

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	nadclient "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/client/clientset/versioned/typed/k8s.cni.cncf.io/v1"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/transport"
)

// Defaults of Options. Kubelet's CRI calls (and so the runtime's CNI ADD)
// time out after minutes; plexus gives up on the API well before that.
const (
	DefaultRequestTimeout = 3 * time.Second
	DefaultBudget         = 10 * time.Second
	DefaultAttempts       = 4
	DefaultPodWait        = 5 * time.Second
	DefaultTotal          = 30 * time.Second
)

// Options bound the time plexus spends on the API. Zero values take the
// defaults above.
type Options struct {
	// RequestTimeout bounds one HTTP request (negative: no bound but the
	// operation's context).
	RequestTimeout time.Duration
	// Budget bounds one operation (a pod lookup, a NAD list, a status write,
	// an Event) including its retries.
	Budget time.Duration
	// Attempts is how often a request is tried when it fails transiently
	// (connection refused, timeout, 429, 5xx); other errors are final.
	Attempts int
	// PodWait is how long Pod waits for a pod that is not (yet) in the API.
	PodWait time.Duration
	// Total bounds all the API work of the Client, from Load on: no
	// operation starts or continues past it.
	Total time.Duration
	// UserAgent is sent with every request; default "plexus".
	UserAgent string
	// Component is the Events' source component; default "plexus".
	Component string
	// Host is the Events' source host; default the pod's node.
	Host string
	// Wrap wraps the transport (after the request counter): plexusd's
	// per-request metrics.
	Wrap transport.WrapperFunc
}

func (o Options) withDefaults() Options {
	if o.RequestTimeout == 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.Budget <= 0 {
		o.Budget = DefaultBudget
	}
	if o.Attempts <= 0 {
		o.Attempts = DefaultAttempts
	}
	if o.PodWait <= 0 {
		o.PodWait = DefaultPodWait
	}
	if o.Total <= 0 {
		o.Total = DefaultTotal
	}
	if o.UserAgent == "" {
		o.UserAgent = "plexus"
	}
	if o.Component == "" {
		o.Component = "plexus"
	}
	return o
}

// Client talks to the kube-apiserver for one plexus invocation. It caches
// what it read (each namespace's NAD list, the pods' nodes) for the life of
// the invocation; create a new one with Load for the next.
type Client struct {
	opts     Options
	deadline time.Time // Options.Total after Load
	http     *http.Client
	core     rest.Interface
	nads     nadclient.K8sCniCncfIoV1Interface
	requests atomic.Int64

	nadMu    sync.Mutex // held across a namespace's LIST: concurrent lookups share it
	nadCache map[string]map[string]*nadv1.NetworkAttachmentDefinition

	mu        sync.Mutex
	nodes     map[string]string // pod namespace/name -> spec.nodeName
	eventErrs []error
}

// Load reads the kubeconfig at kubeconfigPath (anew on every call, so that
// rotated tokens and certificates are picked up) and returns a Client for its
// current context.
func Load(kubeconfigPath string, opts Options) (*Client, error) {
	if kubeconfigPath == "" {
		return nil, fmt.Errorf("kubeconfig: path is empty")
	}
	cfg, err := restConfigFromKubeconfig(kubeconfigPath)
	if err != nil {
		return nil, err
	}
	return newClient(cfg, opts)
}

// NewForConfig returns a Client for an already built rest.Config (tests,
// tools; its WrapTransport is kept); plexus itself uses Load.
func NewForConfig(cfg *rest.Config, opts Options) (*Client, error) {
	return newClient(rest.CopyConfig(cfg), opts)
}

func newClient(cfg *rest.Config, opts Options) (*Client, error) {
	opts = opts.withDefaults()
	c := &Client{
		opts:     opts,
		deadline: time.Now().Add(opts.Total),
		nadCache: map[string]map[string]*nadv1.NetworkAttachmentDefinition{},
		nodes:    map[string]string{},
	}
	if opts.RequestTimeout > 0 {
		// Negative: none (plexusd's watches); its operations are bounded
		// by their contexts.
		cfg.Timeout = opts.RequestTimeout
	}
	cfg.UserAgent = opts.UserAgent
	cfg.QPS = -1 // a handful of requests per exec: no client-side rate limit
	cfg.WrapTransport = transport.Wrappers(cfg.WrapTransport, c.countRequests, opts.Wrap)
	// A Proxy function makes client-go build this Client its own transport
	// instead of sharing a process-wide cached one: one Client, one
	// invocation, its own connection (and Close releases it).
	cfg.Proxy = http.ProxyFromEnvironment
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client for %s: %w", cfg.Host, err)
	}
	core, err := rest.RESTClientForConfigAndClient(coreConfig(cfg), httpClient)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client for %s: %w", cfg.Host, err)
	}
	nadRC, err := rest.RESTClientForConfigAndClient(nadConfig(cfg), httpClient)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client for %s: %w", cfg.Host, err)
	}
	c.http = httpClient
	c.core = core
	c.nads = nadclient.New(nadRC)
	return c, nil
}

// InClusterOrKubeconfig returns the rest.Config of kubeconfigPath, or the
// in-cluster config (the pod's service account) when it is empty: plexusd's.
func InClusterOrKubeconfig(kubeconfigPath string) (*rest.Config, error) {
	if kubeconfigPath != "" {
		return restConfigFromKubeconfig(kubeconfigPath)
	}
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("in-cluster config (or pass --kubeconfig): %w", err)
	}
	return cfg, nil
}

// Session returns a Client sharing c's connections and REST clients, with
// its own deadline (opts.Total from now), options and caches: a daemon's
// one operation, without a new TLS handshake.
func (c *Client) Session(opts Options) *Client {
	opts = opts.withDefaults()
	return &Client{
		opts: opts, deadline: time.Now().Add(opts.Total), http: c.http, core: c.core, nads: c.nads,
		nadCache: map[string]map[string]*nadv1.NetworkAttachmentDefinition{}, nodes: map[string]string{},
	}
}

// CoreREST is the core/v1 REST client (Pods and Events, protobuf).
func (c *Client) CoreREST() rest.Interface { return c.core }

// NADREST is the k8s.cni.cncf.io/v1 REST client.
func (c *Client) NADREST() rest.Interface { return c.nads.RESTClient() }

// Close releases the Client's idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Requests is the number of HTTP requests sent to the API server so far,
// retries included.
func (c *Client) Requests() int { return int(c.requests.Load()) }

func (c *Client) countRequests(rt http.RoundTripper) http.RoundTripper {
	return &countingTransport{next: rt, n: &c.requests}
}

// countingTransport counts the requests going through it.
type countingTransport struct {
	next http.RoundTripper
	n    *atomic.Int64
}

func (t *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if err := r.Context().Err(); err != nil {
		// Its deadline (a budget, Total) passed before it was sent: the
		// transport would fail it without touching the network.
		return nil, err
	}
	t.n.Add(1)
	return t.next.RoundTrip(r)
}

func (t *countingTransport) WrappedRoundTripper() http.RoundTripper { return t.next }

func (t *countingTransport) CloseIdleConnections() { utilnet.CloseIdleConnectionsFor(t.next) }

// hostname is the Events' reporting instance when neither Options.Host nor
// the pod's node is known.
func hostname() string {
	h, _ := os.Hostname()
	return h
}

// budget derives the context of one operation from the caller's: at most
// Options.Budget, and never past the Client's total deadline.
func (c *Client) budget(ctx context.Context) (context.Context, context.CancelFunc) {
	return c.within(ctx, c.opts.Budget)
}

// within bounds ctx by d and by the Client's total deadline.
func (c *Client) within(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	dl := time.Now().Add(d)
	if c.deadline.Before(dl) {
		dl = c.deadline
	}
	return context.WithDeadline(ctx, dl)
}
