// Command cni-recorder is a test-only CNI plugin: ADD writes the config it
// received on stdin to <dir>/<containerID>-<ifname>.json and returns a
// result naming the interface (without creating it); DEL removes the file.
// The node e2e uses it to read back what plexus handed a delegate (device
// ID, runtime config). Config: {"type":"cni-recorder","dir":"/path"}.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
)

type conf struct {
	types.PluginConf
	Dir string `json:"dir"`
}

func load(args *skel.CmdArgs) (*conf, string, error) {
	c := &conf{}
	if err := json.Unmarshal(args.StdinData, c); err != nil {
		return nil, "", err
	}
	if c.Dir == "" {
		return nil, "", fmt.Errorf("cni-recorder: key \"dir\" missing")
	}
	return c, filepath.Join(c.Dir, args.ContainerID+"-"+args.IfName+".json"), nil
}

func main() {
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add: func(args *skel.CmdArgs) error {
			c, path, err := load(args)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(c.Dir, 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(path, args.StdinData, 0o644); err != nil {
				return err
			}
			r := &current.Result{CNIVersion: current.ImplementedSpecVersion,
				Interfaces: []*current.Interface{{Name: args.IfName, Sandbox: args.Netns}}}
			return types.PrintResult(r, c.CNIVersion)
		},
		Del: func(args *skel.CmdArgs) error {
			_, path, err := load(args)
			if err != nil {
				return err
			}
			if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
				return err
			}
			return nil
		},
		Check: func(args *skel.CmdArgs) error { return nil },
	}, version.All, "cni-recorder (test only)")
}
