package rules

import (
	"go/token"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/tools/go/analysis"
)

// HeavyDeps reports a package of the shim whose import graph reaches a
// heavy package. The plexus shim is exec'd for every ADD and DEL of every
// pod: the package init of client-go, grpc or protobuf alone costs it
// milliseconds (docs/architecture.md, "Performance budget").
var HeavyDeps = &analysis.Analyzer{
	Name:      "heavydeps",
	Doc:       "the shim's import graph (cmd/plexus, pkg/shim, pkg/attach) holds no k8s.io, sigs.k8s.io, grpc, protobuf, NAD client or net/http package",
	Run:       runHeavyDeps,
	FactTypes: []analysis.Fact{new(heavyPath)},
}

// LeanRoots are the packages whose whole import graph must stay light.
var LeanRoots = []string{Module + "/cmd/plexus", Module + "/pkg/shim", Module + "/pkg/attach"}

var heavyPrefixes = []string{
	"k8s.io/", "sigs.k8s.io/", "google.golang.org/grpc", "google.golang.org/protobuf",
	"github.com/golang/protobuf/", "github.com/gogo/protobuf/", "github.com/k8snetworkplumbingwg/",
}

func heavy(path string) bool {
	if path == "net/http" {
		return true
	}
	for _, p := range heavyPrefixes {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

// heavyPath is the fact of a package that is heavy or imports one: the
// import path from it down to the first heavy package.
type heavyPath struct{ Path []string }

func (*heavyPath) AFact() {}

func (h *heavyPath) String() string { return strings.Join(h.Path, " → ") }

func runHeavyDeps(pass *analysis.Pass) (any, error) {
	self := pass.Pkg.Path()
	if strings.HasSuffix(self, ".test") {
		return nil, nil // the generated main of a test binary
	}
	if heavy(self) {
		pass.ExportPackageFact(&heavyPath{Path: []string{self}})
		return nil, nil
	}
	// go vet analyzes a package together with its _test.go files: what
	// only the tests import is not linked into the shim.
	shipped := map[string]bool{}
	var at token.Pos
	for _, f := range pass.Files {
		if inTestFile(pass, f.Package) {
			continue
		}
		if !at.IsValid() {
			at = f.Package
		}
		for _, spec := range f.Imports {
			if p, err := strconv.Unquote(spec.Path.Value); err == nil {
				shipped[p] = true
			}
		}
	}
	h := shortestHeavy(pass, func(p string) bool { return shipped[p] })
	if h == nil {
		return nil, nil
	}
	pass.ExportPackageFact(h)
	if isLeanRoot(self) && at.IsValid() {
		pass.Reportf(at, "%s must stay light (it is linked into the plexus shim, exec'd for every pod), but imports %s", self, h)
	}
	return nil, nil
}

// shortestHeavy returns the shortest import path from the pass's package
// through one of its imports that keep allows to a heavy package, or nil.
func shortestHeavy(pass *analysis.Pass, keep func(path string) bool) *heavyPath {
	imps := pass.Pkg.Imports()
	sort.Slice(imps, func(i, j int) bool { return imps[i].Path() < imps[j].Path() })
	var found *heavyPath
	for _, imp := range imps {
		var h heavyPath
		if keep(imp.Path()) && pass.ImportPackageFact(imp, &h) && (found == nil || len(h.Path) < len(found.Path)-1) {
			found = &heavyPath{Path: append([]string{pass.Pkg.Path()}, h.Path...)}
		}
	}
	return found
}

func isLeanRoot(path string) bool {
	for _, r := range LeanRoots {
		if path == r {
			return true
		}
	}
	return false
}
