// Command passthru is the CNI plugin that heads Multus's auxiliary chain
// (auxiliaryCNIChainName): ADD returns the previous result unchanged, or an
// empty result when there is none, so the chained plugins read from disk
// get a prevResult; every other command succeeds. plexus ships it so that a
// config with auxiliaryCNIChainName works on a node that never had Multus.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	cniversion "github.com/containernetworking/cni/pkg/version"
)

// version is stamped at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func add(args *skel.CmdArgs) error {
	conf := types.NetConf{}
	if err := json.Unmarshal(args.StdinData, &conf); err != nil {
		return fmt.Errorf("passthru config: %v", err)
	}
	if err := cniversion.ParsePrevResult(&conf); err != nil {
		return err
	}
	if conf.PrevResult != nil {
		return types.PrintResult(conf.PrevResult, conf.CNIVersion)
	}
	return types.PrintResult(&current.Result{CNIVersion: current.ImplementedSpecVersion}, conf.CNIVersion)
}

func ok(*skel.CmdArgs) error { return nil }

func main() {
	if len(os.Args) == 2 && (os.Args[1] == "--version" || os.Args[1] == "-version") {
		fmt.Println("passthru", version)
		return
	}
	skel.PluginMainFuncs(skel.CNIFuncs{Add: add, Del: ok, Check: ok, GC: ok, Status: ok}, cniversion.All, "passthru (plexus) "+version)
}
