package cnienv

import (
	"context"
	"os"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/version"
)

// envExec is libcni's default executor with extra environment variables for
// the plugin (test hooks such as a fake sysfs root).
type envExec struct {
	env []string
	raw invoke.RawExec
}

func (x *envExec) ExecPlugin(ctx context.Context, pluginPath string, stdinData []byte, environ []string) ([]byte, error) {
	if len(x.env) > 0 {
		environ = append(append([]string{}, environ...), x.env...)
	}
	x.raw.Stderr = os.Stderr
	return x.raw.ExecPlugin(ctx, pluginPath, stdinData, environ)
}

func (x *envExec) FindInPath(plugin string, paths []string) (string, error) {
	return invoke.FindInPath(plugin, paths)
}

func (x *envExec) Decode(jsonBytes []byte) (version.PluginInfo, error) {
	return (&version.PluginDecoder{}).Decode(jsonBytes)
}
