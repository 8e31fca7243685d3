package main // want `cmd/plexus must stay light .* imports github.com/plexus-cni/plexus/cmd/plexus → github.com/plexus-cni/plexus/pkg/attach → github.com/plexus-cni/plexus/pkg/daemon → k8s.io/client-go/rest` package:"cmd/plexus → .*/pkg/attach → .*/pkg/daemon → k8s.io/client-go/rest"

import (
	"github.com/plexus-cni/plexus/pkg/attach"
	"github.com/plexus-cni/plexus/pkg/shim"
)

func main() { attach.Run(); shim.Run() }
