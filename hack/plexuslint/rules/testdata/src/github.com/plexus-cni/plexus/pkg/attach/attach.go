package attach // want `github.com/plexus-cni/plexus/pkg/attach must stay light .* imports github.com/plexus-cni/plexus/pkg/attach → github.com/plexus-cni/plexus/pkg/daemon → k8s.io/client-go/rest` package:"pkg/attach → .*/pkg/daemon → k8s.io/client-go/rest"

import (
	"lightlib"

	"github.com/plexus-cni/plexus/pkg/daemon"
)

func Run() { lightlib.Light(); _ = daemon.Config }
