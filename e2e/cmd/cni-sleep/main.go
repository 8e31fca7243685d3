// Command cni-sleep is a test-only chained CNI plugin: ADD waits "sleepMs"
// milliseconds, then passes the previous plugin's result on; DEL and CHECK
// do nothing. The node e2e puts it after a real plugin to hold a hot-plug
// in the middle of its delegate (plexusd killed, the pod deleted).
// Config: {"type":"cni-sleep","sleepMs":1500}.
package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

type conf struct {
	types.PluginConf
	SleepMs int `json:"sleepMs"`
}

func main() {
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add: func(args *skel.CmdArgs) error {
			c := &conf{}
			if err := json.Unmarshal(args.StdinData, c); err != nil {
				return err
			}
			if err := version.ParsePrevResult(&c.PluginConf); err != nil {
				return err
			}
			if c.PrevResult == nil {
				return fmt.Errorf("cni-sleep: chain it after a plugin that returns a result")
			}
			time.Sleep(time.Duration(c.SleepMs) * time.Millisecond)
			return types.PrintResult(c.PrevResult, c.CNIVersion)
		},
		Del:   func(*skel.CmdArgs) error { return nil },
		Check: func(*skel.CmdArgs) error { return nil },
	}, version.All, "cni-sleep (plexus e2e)")
}
