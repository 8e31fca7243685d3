package daemon // want package:"pkg/daemon → k8s.io/client-go/rest"

// Not linked into the shim: it may be heavy.
import "k8s.io/client-go/rest"

var Config rest.Config
