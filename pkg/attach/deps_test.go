package attach

import (
	"os/exec"
	"strings"
	"testing"
)

// The attach stage is what the daemon deployment's lean CNI shim links: its
// import graph must hold no Kubernetes, grpc or protobuf package (their
// package init alone costs milliseconds on every exec).
func TestNoHeavyImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/plexus-cni/plexus/pkg/attach").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	var heavy []string
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "k8s.io/") || strings.HasPrefix(p, "google.golang.org/grpc") ||
			strings.HasPrefix(p, "google.golang.org/protobuf") || strings.HasPrefix(p, "github.com/k8snetworkplumbingwg/") {
			heavy = append(heavy, p)
		}
	}
	if len(heavy) > 0 {
		t.Fatalf("pkg/attach imports %d heavy packages, e.g. %v", len(heavy), heavy[:min(5, len(heavy))])
	}
}
