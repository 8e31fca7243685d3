package shim

import "k8s.io/client-go/rest"

// A root's tests may import heavy packages: they are not in the binary.
var _ rest.Config
