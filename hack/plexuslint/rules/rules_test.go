package rules

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"unicode"

	"golang.org/x/tools/go/analysis/analysistest"
)

// Each rule against fixtures (testdata/src) that break it: the `// want`
// comments are the findings it must report, and nothing else.

func TestNetlinkDump(t *testing.T) {
	analysistest.Run(t, analysistest.TestData(), NetlinkDump, "netlinkuser", "github.com/containernetworking/plugins/pkg/netlinksafe")
}

func TestPlexusEnv(t *testing.T) {
	analysistest.Run(t, analysistest.TestData(), PlexusEnv, "github.com/plexus-cni/plexus/pkg/prod", "github.com/plexus-cni/plexus/pkg/testutil/seams")
}

func TestHeavyDeps(t *testing.T) {
	analysistest.Run(t, analysistest.TestData(), HeavyDeps, "github.com/plexus-cni/plexus/cmd/plexus", "github.com/plexus-cni/plexus/pkg/attach", "github.com/plexus-cni/plexus/pkg/shim", "github.com/plexus-cni/plexus/pkg/daemon")
}

func TestProduction(t *testing.T) {
	for path, want := range map[string]bool{
		Module + "/cmd/plexusd":                   true,
		Module + "/pkg/sriov/cni":                 true,
		Module + "/pkg/testutil":                  false,
		Module + "/pkg/testutil/sriovseams/sriov": false,
		Module + "/pkg/testutilities":             true,
		Module + "/e2e/cluster":                   false,
		Module + "/hack/plexuslint":               false,
		"example.com/pkg/x":                       false,
	} {
		if got := production(path); got != want {
			t.Errorf("production(%s) = %v, want %v", path, got, want)
		}
	}
}

// TestNetlinkDumpsMatchNetlinksafe: the rule forbids exactly the raw calls
// the netlinksafe in go.mod wraps (its exported functions that return
// something), so a newer netlinksafe's additions are not missed.
func TestNetlinkDumpsMatchNetlinksafe(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.Dir}}", netlinksafePkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	pkgs, err := parser.ParseDir(token.NewFileSet(), strings.TrimSpace(string(out)), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var wrapped []string
	seen := map[string]bool{}
	for _, p := range pkgs {
		for name, f := range p.Files {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			for _, d := range f.Decls {
				fd, ok := d.(*ast.FuncDecl)
				if !ok || !unicode.IsUpper(rune(fd.Name.Name[0])) || fd.Type.Results == nil || seen[fd.Name.Name] {
					continue
				}
				if n := fd.Name.Name; n != "NewHandle" && n != "NewHandleAt" {
					seen[n] = true
					wrapped = append(wrapped, n)
				}
			}
		}
	}
	var ours []string
	for n := range netlinkDumps {
		ours = append(ours, n)
	}
	sort.Strings(wrapped)
	sort.Strings(ours)
	if strings.Join(wrapped, " ") != strings.Join(ours, " ") {
		t.Errorf("netlinksafe (%s) wraps\n  %v\nthe rule forbids\n  %v", strings.TrimSpace(string(out)), wrapped, ours)
	}
}
