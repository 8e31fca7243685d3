// Package cnienv is a node-integration test environment for plexus: temp
// directories for NADs, configs, cache and IPAM state, unique host-side
// names and subnets, and a "runtime" that execs the built plexus binary
// through libcni exactly as containerd does.
package cnienv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/plexus-cni/plexus/pkg/testutil"
)

// Env is one test's world.
type Env struct {
	T           testing.TB
	Dir         string
	NetworksDir string // NAD YAML files (clusterless)
	ConfDir     string
	CNIDir      string // plexus cache
	IPAMDir     string // host-local dataDir
	BinDir      string // plexus's binDir: the reference plugins
	Suffix      string // unique per Env, for host-side names
	Bridge      string // the primary bridge
	Subnet      string // the primary subnet, e.g. 10.77.3.0/24
	octet2      int
	octet3      int
	PlexusBin   string
	// Extra keys merged into plexus's config.
	Extra map[string]any
	// Env vars passed to plexus (and so to delegates).
	ExecEnv []string
	// CNIVersion of plexus's conflist; default 1.1.0.
	CNIVersion string
}

// New prepares an Env; it needs root and the built binaries.
func New(t testing.TB) *Env {
	t.Helper()
	testutil.RequireRoot(t)
	dir := t.TempDir()
	b := make([]byte, 3)
	rand.Read(b)
	suf := hex.EncodeToString(b)
	o2, _ := rand.Int(rand.Reader, big.NewInt(60))
	o3, _ := rand.Int(rand.Reader, big.NewInt(250))
	e := &Env{
		T: t, Dir: dir, Suffix: suf,
		NetworksDir: filepath.Join(dir, "networks"), ConfDir: filepath.Join(dir, "net.d"),
		CNIDir: filepath.Join(dir, "plexus"), IPAMDir: filepath.Join(dir, "ipam"),
		BinDir: testutil.CNIBinDir(), Bridge: "pxb" + suf,
		octet2: 100 + int(o2.Int64()), octet3: int(o3.Int64()),
		PlexusBin: testutil.BuildBinary(t, "plexus"),
	}
	testutil.RefPlugin(t, "bridge")
	e.Subnet = e.SubnetN(0)
	for _, d := range []string{e.NetworksDir, e.ConfDir, e.CNIDir, e.IPAMDir} {
		os.MkdirAll(d, 0o755)
	}
	t.Cleanup(func() {
		for _, l := range e.HostLinks() {
			_ = netlink.LinkDel(l)
		}
	})
	return e
}

// SubnetN is the Env's n-th /24 (n=0 is the primary's).
func (e *Env) SubnetN(n int) string {
	return fmt.Sprintf("10.%d.%d.0/24", e.octet2, (e.octet3+n)%250)
}

// IPN returns host address h in subnet n.
func (e *Env) IPN(n, h int) string {
	return fmt.Sprintf("10.%d.%d.%d", e.octet2, (e.octet3+n)%250, h)
}

// Name gives a unique host-side interface name with prefix p (≤ 8 chars).
func (e *Env) Name(p string) string { return p + e.Suffix }

// HostLinks lists host links this Env created (names ending in its suffix).
func (e *Env) HostLinks() []netlink.Link {
	links, _ := netlinksafe.LinkList()
	var out []netlink.Link
	for _, l := range links {
		if strings.HasSuffix(l.Attrs().Name, e.Suffix) {
			out = append(out, l)
		}
	}
	return out
}

// BridgeConf is a bridge + host-local conflist on subnet n with bridge br.
func (e *Env) BridgeConf(name, br string, n int, extraPlugins ...string) string {
	plugins := []string{fmt.Sprintf(`{"type":"bridge","bridge":%q,"isGateway":true,"ipMasq":false,"ipam":{"type":"host-local","dataDir":%q,"ranges":[[{"subnet":%q}]],"routes":[{"dst":"0.0.0.0/0"}]}}`, br, e.IPAMDir, e.SubnetN(n))}
	plugins = append(plugins, extraPlugins...)
	return fmt.Sprintf(`{"cniVersion":"1.1.0","name":%q,"plugins":[%s]}`, name, strings.Join(plugins, ","))
}

// WritePrimary writes the primary network conflist into ConfDir.
func (e *Env) WritePrimary() {
	e.WriteFile(filepath.Join(e.ConfDir, "10-primary.conflist"), e.BridgeConf("primary", e.Bridge, 0))
}

// WriteNAD writes a NAD YAML file with the given CNI config.
func (e *Env) WriteNAD(namespace, name, config string, annotations ...string) {
	var ann string
	if len(annotations) > 0 {
		ann = "  annotations:\n"
		for i := 0; i+1 < len(annotations); i += 2 {
			ann += fmt.Sprintf("    %s: %q\n", annotations[i], annotations[i+1])
		}
	}
	y := fmt.Sprintf("apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\nmetadata:\n  name: %s\n  namespace: %s\n%sspec:\n  config: '%s'\n", name, namespace, ann, config)
	e.WriteFile(filepath.Join(e.NetworksDir, namespace+"-"+name+".yaml"), y)
}

// WriteFile writes a file, failing the test on error.
func (e *Env) WriteFile(path, content string) {
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		e.T.Fatal(err)
	}
}

// PlexusConf is plexus's conflist as a runtime would load it.
func (e *Env) PlexusConf() *libcni.NetworkConfigList {
	c := map[string]any{
		// The primary's file path, as plexus-install writes it: no API
		// request (a name would be looked up as a NAD first, as Multus).
		"type": "plexus", "clusterNetwork": filepath.Join(e.ConfDir, "10-primary.conflist"), "confDir": e.ConfDir, "cniDir": e.CNIDir,
		"binDir": e.BinDir, "networksDir": e.NetworksDir, "logFile": filepath.Join(e.Dir, "plexus.log"), "logLevel": "debug", "logToStderr": false,
		"capabilities": map[string]bool{"portMappings": true},
	}
	for k, v := range e.Extra {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	v := e.CNIVersion
	if v == "" {
		v = "1.1.0"
	}
	b, _ := json.Marshal(map[string]any{"cniVersion": v, "name": "plexus", "plugins": []any{c}})
	l, err := libcni.NetworkConfFromBytes(b)
	if err != nil {
		e.T.Fatal(err)
	}
	return l
}

// Pod is a pod sandbox: a netns and the CNI identity of its container.
type Pod struct {
	Namespace, Name, UID, ContainerID string
	NS                                ns.NetNS
	Networks                          string // K8S_POD_NETWORKS
}

// NewPod makes a pod with its own netns.
func (e *Env) NewPod(name, networks string) *Pod {
	b := make([]byte, 8)
	rand.Read(b)
	return &Pod{Namespace: "default", Name: name, UID: "uid-" + hex.EncodeToString(b[:4]), ContainerID: hex.EncodeToString(b), NS: testutil.NewNS(e.T), Networks: networks}
}

func (e *Env) cni() *libcni.CNIConfig {
	dir := filepath.Dir(e.PlexusBin)
	return libcni.NewCNIConfigWithCacheDir([]string{dir, e.BinDir}, filepath.Join(e.Dir, "runtime-cache"), &envExec{env: e.ExecEnv})
}

// RT is the runtime config containerd would pass for the pod.
func (e *Env) RT(p *Pod) *libcni.RuntimeConf {
	args := [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", p.Namespace}, {"K8S_POD_NAME", p.Name},
		{"K8S_POD_INFRA_CONTAINER_ID", p.ContainerID}, {"K8S_POD_UID", p.UID}}
	if p.Networks != "" {
		args = append(args, [2]string{"K8S_POD_NETWORKS", p.Networks})
	}
	nsPath := ""
	if p.NS != nil {
		nsPath = p.NS.Path()
	}
	return &libcni.RuntimeConf{ContainerID: p.ContainerID, NetNS: nsPath, IfName: "eth0", Args: args}
}

// Add runs ADD of plexus for the pod.
func (e *Env) Add(p *Pod) (*current.Result, error) {
	res, err := e.AddRaw(p)
	if err != nil {
		return nil, err
	}
	return current.NewResultFromResult(res)
}

// AddRaw runs ADD and returns the result in the version plexus printed.
func (e *Env) AddRaw(p *Pod) (types.Result, error) {
	return e.cni().AddNetworkList(context.Background(), e.PlexusConf(), e.RT(p))
}

// Status runs STATUS.
func (e *Env) Status() error {
	return e.cni().GetStatusNetworkList(context.Background(), e.PlexusConf())
}

// Del runs DEL.
func (e *Env) Del(p *Pod) error {
	return e.cni().DelNetworkList(context.Background(), e.PlexusConf(), e.RT(p))
}

// Check runs CHECK.
func (e *Env) Check(p *Pod) error {
	return e.cni().CheckNetworkList(context.Background(), e.PlexusConf(), e.RT(p))
}

// GC runs GC with the given pods as the valid ones.
func (e *Env) GC(valid ...*Pod) error {
	var v []types.GCAttachment
	for _, p := range valid {
		v = append(v, types.GCAttachment{ContainerID: p.ContainerID, IfName: "eth0"})
	}
	return e.cni().GCNetworkList(context.Background(), e.PlexusConf(), &libcni.GCArgs{ValidAttachments: v})
}

// Links lists the pod's interfaces by name (lo excluded).
func (e *Env) Links(p *Pod) map[string]netlink.Link {
	out := map[string]netlink.Link{}
	err := p.NS.Do(func(ns.NetNS) error {
		links, err := netlinksafe.LinkList()
		for _, l := range links {
			if l.Attrs().Name != "lo" {
				out[l.Attrs().Name] = l
			}
		}
		return err
	})
	if err != nil {
		e.T.Fatal(err)
	}
	return out
}

// Addrs lists the IPv4/IPv6 global addresses on the pod's interface.
func (e *Env) Addrs(p *Pod, ifname string) []string {
	var out []string
	err := p.NS.Do(func(ns.NetNS) error {
		l, err := netlinksafe.LinkByName(ifname)
		if err != nil {
			return err
		}
		as, err := netlinksafe.AddrList(l, netlink.FAMILY_ALL)
		for _, a := range as {
			if a.Scope == 0 {
				out = append(out, a.IPNet.String())
			}
		}
		return err
	})
	if err != nil {
		e.T.Fatalf("addresses of %s: %v", ifname, err)
	}
	return out
}

// Leases lists host-local lease files (IP addresses reserved) of all ranges.
func (e *Env) Leases() []string {
	var out []string
	filepath.Walk(e.IPAMDir, func(path string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && !strings.HasPrefix(info.Name(), "last_reserved_ip") && info.Name() != "lock" {
			out = append(out, path)
		}
		return nil
	})
	return out
}

// CacheEntries lists plexus's cached containers.
func (e *Env) CacheEntries() []string {
	ents, _ := os.ReadDir(filepath.Join(e.CNIDir, "containers"))
	var out []string
	for _, d := range ents {
		out = append(out, d.Name())
	}
	return out
}

// Log returns plexus's log, for failure messages.
func (e *Env) Log() string {
	b, _ := os.ReadFile(filepath.Join(e.Dir, "plexus.log"))
	return string(b)
}

// AssertClean fails unless the pod has no interfaces, no lease and no cache
// entry is left.
func (e *Env) AssertClean(p *Pod) {
	e.T.Helper()
	if p.NS != nil {
		if _, err := os.Stat(p.NS.Path()); err == nil {
			if links := e.Links(p); len(links) != 0 {
				e.T.Errorf("interfaces left in pod %s: %v", p.Name, keys(links))
			}
		}
	}
	if l := e.Leases(); len(l) != 0 {
		e.T.Errorf("IPAM leases left: %v", l)
	}
	if c := e.CacheEntries(); len(c) != 0 {
		e.T.Errorf("cache entries left: %v", c)
	}
}

func keys(m map[string]netlink.Link) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// ExecPlexus runs the plexus binary for the pod exactly as a runtime does
// (CNI_* environment, conf on stdin) and returns its wall time and the peak
// RSS in KiB of plexus and the delegates it waited for.
func (e *Env) ExecPlexus(cmd string, p *Pod, conf []byte) (time.Duration, int64, error) {
	return e.ExecBinary(e.PlexusBin, cmd, p, conf)
}

// ExecBinary is ExecPlexus with another binary (plexus-thin, a baseline).
func (e *Env) ExecBinary(bin, cmd string, p *Pod, conf []byte) (time.Duration, int64, error) {
	rt := e.RT(p)
	var args []string
	for _, kv := range rt.Args {
		args = append(args, kv[0]+"="+kv[1])
	}
	c := exec.Command(bin)
	c.Env = append(append(os.Environ(), e.ExecEnv...), "CNI_COMMAND="+cmd, "CNI_CONTAINERID="+p.ContainerID, "CNI_NETNS="+p.NS.Path(),
		"CNI_IFNAME=eth0", "CNI_PATH="+e.BinDir, "CNI_ARGS="+strings.Join(args, ";"))
	c.Stdin = bytes.NewReader(conf)
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	start := time.Now()
	if err := c.Run(); err != nil {
		return 0, 0, fmt.Errorf("%s %s: %v: %s", filepath.Base(bin), cmd, err, out.String())
	}
	return time.Since(start), c.ProcessState.SysUsage().(*syscall.Rusage).Maxrss, nil
}

// PluginStdin is plexus's plugin config as a runtime passes it on stdin
// (name and cniVersion injected).
func (e *Env) PluginStdin() []byte {
	l := e.PlexusConf()
	return bytes.Replace(l.Plugins[0].Bytes, []byte("{"), []byte(fmt.Sprintf(`{"name":%q,"cniVersion":%q,`, l.Name, l.CNIVersion)), 1)
}
