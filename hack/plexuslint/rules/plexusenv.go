package rules

import (
	"go/ast"
	"go/constant"
	"go/types"
	"strings"

	"golang.org/x/tools/go/analysis"
	"golang.org/x/tools/go/types/typeutil"
)

// PlexusEnv reports production code that reads a PLEXUS_* environment
// variable. A test seam (a fake sysfs root, a fake PF) is chosen by the
// test that builds its own binary (pkg/testutil/sriovseams), never by an
// environment variable a shipped binary reads: on a node, anyone who can
// set the runtime's environment could switch it on.
var PlexusEnv = &analysis.Analyzer{
	Name: "plexusenv",
	Doc:  "production code (cmd/, pkg/ except pkg/testutil, no _test.go) reads no PLEXUS_* environment variable",
	Run:  runPlexusEnv,
}

// production reports whether a package of the module ships in a binary.
func production(path string) bool {
	rel, ok := strings.CutPrefix(path, Module+"/")
	if !ok {
		return false
	}
	return (strings.HasPrefix(rel, "cmd/") || strings.HasPrefix(rel, "pkg/")) &&
		rel != "pkg/testutil" && !strings.HasPrefix(rel, "pkg/testutil/")
}

// envReaders are the functions whose first argument names a variable.
var envReaders = map[string]bool{"os.Getenv": true, "os.LookupEnv": true, "syscall.Getenv": true}

func runPlexusEnv(pass *analysis.Pass) (any, error) {
	if !production(pass.Pkg.Path()) {
		return nil, nil
	}
	for _, f := range pass.Files {
		if inTestFile(pass, f.Package) {
			continue
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			fn, ok := typeutil.Callee(pass.TypesInfo, call).(*types.Func)
			if !ok || fn.Pkg() == nil || !envReaders[fn.Pkg().Path()+"."+fn.Name()] {
				return true
			}
			tv := pass.TypesInfo.Types[call.Args[0]]
			if tv.Value == nil || tv.Value.Kind() != constant.String {
				return true
			}
			if v := constant.StringVal(tv.Value); strings.HasPrefix(v, "PLEXUS_") {
				pass.Reportf(call.Pos(), "%s(%q) in production code: a shipped binary must not read PLEXUS_* variables; let the test choose the seam (pkg/testutil)", fn.Pkg().Name()+"."+fn.Name(), v)
			}
			return true
		})
	}
	return nil, nil
}
