// Command testplugin is a CNI plugin for plexus's tests that misbehaves on
// request, standing in for third-party plugins that fail or ignore input.
// Its config keys (besides the CNI ones):
//
//	"delegate":  run this real plugin (found in CNI_PATH) for the command
//	"stripArgs": CNI_ARGS keys removed before the delegate runs (a plugin
//	             that does not read legacy IP=/MAC=)
//	"failAdd":   ADD fails
//	"failDel":   DEL fails
//	"failStatus": STATUS fails (plugin not ready)
//	"dumpTable": a file: ADD first writes there what `nft list table inet
//	             plexus` prints in CNI_NETNS (nothing when no table), so a
//	             test sees the pod's rules as the delegates run
//	"holdDel":   a directory: DEL creates "held" in it, then waits (at most
//	             a minute) until "release" exists there, so a test can act
//	             while the caller's DEL is under way
//
// Without a delegate, ADD returns prevResult (or an empty result), as a
// chained plugin that changes nothing.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/containernetworking/plugins/pkg/ns"
)

type conf struct {
	types.NetConf
	Delegate  string   `json:"delegate"`
	StripArgs []string `json:"stripArgs"`
	FailAdd   bool     `json:"failAdd"`
	FailDel   bool     `json:"failDel"`
	FailStat  bool     `json:"failStatus"`
	HoldDel   string   `json:"holdDel"`
	DumpTable string   `json:"dumpTable"`
}

func load(b []byte) (*conf, error) {
	c := &conf{}
	if err := json.Unmarshal(b, c); err != nil {
		return nil, err
	}
	if len(c.StripArgs) > 0 {
		var keep []string
		for _, kv := range strings.Split(os.Getenv("CNI_ARGS"), ";") {
			k, _, _ := strings.Cut(kv, "=")
			strip := false
			for _, s := range c.StripArgs {
				strip = strip || s == k
			}
			if !strip && kv != "" {
				keep = append(keep, kv)
			}
		}
		os.Setenv("CNI_ARGS", strings.Join(keep, ";"))
	}
	return c, nil
}

func add(args *skel.CmdArgs) error {
	c, err := load(args.StdinData)
	if err != nil {
		return err
	}
	if c.FailAdd {
		return fmt.Errorf("testplugin: ADD fails as configured")
	}
	if c.DumpTable != "" {
		var out []byte
		err := ns.WithNetNSPath(args.Netns, func(ns.NetNS) error {
			out, _ = exec.Command("nft", "list", "table", "inet", "plexus").Output()
			return nil
		})
		if err != nil {
			return err
		}
		if err := os.WriteFile(c.DumpTable, out, 0o600); err != nil {
			return err
		}
	}
	if c.Delegate != "" {
		res, err := invoke.DelegateAdd(context.Background(), c.Delegate, args.StdinData, nil)
		if err != nil {
			return err
		}
		return types.PrintResult(res, c.CNIVersion)
	}
	if c.RawPrevResult != nil {
		if err := version.ParsePrevResult(&c.NetConf); err != nil {
			return err
		}
		return types.PrintResult(c.PrevResult, c.CNIVersion)
	}
	return types.PrintResult(&current.Result{CNIVersion: current.ImplementedSpecVersion}, c.CNIVersion)
}

func del(args *skel.CmdArgs) error {
	c, err := load(args.StdinData)
	if err != nil {
		return err
	}
	if c.HoldDel != "" {
		if err := os.WriteFile(filepath.Join(c.HoldDel, "held"), nil, 0o600); err != nil {
			return err
		}
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
			if _, err := os.Stat(filepath.Join(c.HoldDel, "release")); err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("testplugin: DEL held for a minute, never released")
			}
		}
	}
	if c.FailDel {
		return fmt.Errorf("testplugin: DEL fails as configured")
	}
	if c.Delegate != "" {
		return invoke.DelegateDel(context.Background(), c.Delegate, args.StdinData, nil)
	}
	return nil
}

func ok(*skel.CmdArgs) error { return nil }

func status(args *skel.CmdArgs) error {
	c, err := load(args.StdinData)
	if err != nil {
		return err
	}
	if c.FailStat {
		return types.NewError(50, "testplugin: not ready as configured", "")
	}
	return nil
}

func main() {
	skel.PluginMainFuncs(skel.CNIFuncs{Add: add, Del: del, Check: ok, GC: ok, Status: status}, version.All, "plexus testplugin")
}
