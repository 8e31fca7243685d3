package rules

import (
	"go/ast"
	"go/types"

	"golang.org/x/tools/go/analysis"
)

const (
	netlinkPkg     = "github.com/vishvananda/netlink"
	netlinksafePkg = "github.com/containernetworking/plugins/pkg/netlinksafe"
)

// netlinkDumps are the functions and netlink.Handle methods that
// netlinksafe (containernetworking/plugins v1.9.1) wraps: kernel dumps that
// vishvananda/netlink returns with ErrDumpInterrupted and partial results
// when the table changes during the dump. netlinksafe retries them.
// TestNetlinkDumpsMatchNetlinksafe keeps the list in step with it.
var netlinkDumps = map[string]bool{
	"AddrList": true, "BridgeVlanList": true, "ConntrackDeleteFilters": true,
	"FilterList": true, "LinkByName": true, "LinkGetProtinfo": true,
	"LinkList": true, "QdiscList": true, "RouteList": true,
	"RouteListFiltered": true, "RuleList": true, "RuleListFiltered": true,
}

// NetlinkDump reports uses of the raw netlink dumps that netlinksafe wraps.
var NetlinkDump = &analysis.Analyzer{
	Name: "netlinkdump",
	Doc:  "no raw vishvananda/netlink dump (LinkList, LinkByName, AddrList, RouteList…) outside netlinksafe: an interrupted dump returns partial results",
	Run:  runNetlinkDump,
}

func runNetlinkDump(pass *analysis.Pass) (any, error) {
	if pass.Pkg.Path() == netlinksafePkg {
		return nil, nil
	}
	for _, f := range pass.Files {
		ast.Inspect(f, func(n ast.Node) bool {
			id, ok := n.(*ast.Ident)
			if !ok {
				return true
			}
			fn, ok := pass.TypesInfo.Uses[id].(*types.Func)
			if !ok || fn.Pkg() == nil || fn.Pkg().Path() != netlinkPkg || !netlinkDumps[fn.Name()] {
				return true
			}
			name := "netlink." + fn.Name()
			if recv := fn.Signature().Recv(); recv != nil {
				if !isNamed(recv.Type(), netlinkPkg, "Handle") {
					return true
				}
				name = "(*netlink.Handle)." + fn.Name()
			}
			pass.Reportf(id.Pos(), "%s: an interrupted dump returns partial results; use netlinksafe.%s (containernetworking/plugins)", name, fn.Name())
			return true
		})
	}
	return nil, nil
}

// isNamed reports whether t is pkg.name or a pointer to it.
func isNamed(t types.Type, pkg, name string) bool {
	if p, ok := t.(*types.Pointer); ok {
		t = p.Elem()
	}
	n, ok := t.(*types.Named)
	return ok && n.Obj().Pkg() != nil && n.Obj().Pkg().Path() == pkg && n.Obj().Name() == name
}
