// Package rules holds the project's own lint rules, each a go/analysis
// analyzer run by `go vet -vettool` (hack/plexuslint, `make lint`):
//
//   - netlinkdump: no raw vishvananda/netlink dump call that netlinksafe
//     wraps, anywhere (tests included): use netlinksafe;
//   - plexusenv: production code (cmd/, pkg/ but pkg/testutil) reads no
//     PLEXUS_* environment variable: test seams are chosen by the test;
//   - heavydeps: the shim's import graph (cmd/plexus, pkg/shim, pkg/attach)
//     holds no Kubernetes, grpc, protobuf or net/http package.
//
// A Go comment citing a document that is not in the repository (the old
// design notes) is caught by docs/gocomments_test.go, which checks every
// citation of a document and its section.
package rules

import (
	"go/token"
	"strings"

	"golang.org/x/tools/go/analysis"
)

// Module is the project's module path.
const Module = "github.com/plexus-cni/plexus"

// Analyzers are all the rules, in the order plexuslint runs them.
var Analyzers = []*analysis.Analyzer{NetlinkDump, PlexusEnv, HeavyDeps}

// inTestFile reports whether pos is in a _test.go file.
func inTestFile(pass *analysis.Pass, pos token.Pos) bool {
	return strings.HasSuffix(pass.Fset.File(pos).Name(), "_test.go")
}
