package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The shim is exec'd twice per pod: its import graph must hold no
// Kubernetes, grpc or protobuf package (their package init alone costs
// milliseconds on every exec), nor net/http.
func TestShimImportGraph(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	var heavy []string
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "k8s.io/") || strings.HasPrefix(p, "google.golang.org/grpc") ||
			strings.HasPrefix(p, "google.golang.org/protobuf") || strings.HasPrefix(p, "github.com/golang/protobuf") ||
			strings.HasPrefix(p, "github.com/k8snetworkplumbingwg/") || p == "net/http" || strings.HasPrefix(p, "sigs.k8s.io/") {
			heavy = append(heavy, p)
		}
	}
	if len(heavy) > 0 {
		t.Fatalf("cmd/plexus (the shim) imports %d heavy packages: %v", len(heavy), heavy)
	}
}
