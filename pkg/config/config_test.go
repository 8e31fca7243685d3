package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const base = `"cniVersion":"1.1.0","name":"plexus","type":"plexus"`

func TestLoadGood(t *testing.T) {
	c, err := Load([]byte(`{` + base + `,"clusterNetwork":"cbr0","readinessIndicatorFile":"/run/ready","plexusNamespace":"net-system","globalNamespaces":"a, b","logLevel":"debug","dns":{},"runtimeConfig":{"portMappings":[]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.CNIDir != DefaultCNIDir || c.ConfDir != DefaultConfDir || c.BinDir != DefaultBinDir {
		t.Errorf("defaults not applied: %+v", c)
	}
	if c.MultusNamespace != "net-system" || c.ReadinessIndicatorFile != "/run/ready" {
		t.Errorf("aliases not applied: %+v", c)
	}
	if got := c.GlobalNamespaceList(); len(got) != 2 || got[1] != "b" {
		t.Errorf("globalNamespaces: %v", got)
	}
	if !c.Clusterless() || !c.IsSystemNamespace("kube-system") {
		t.Errorf("mode/system namespaces wrong")
	}
	c.NamespaceIsolation = true
	if c.MayReference("p", "q") || !c.MayReference("p", "p") || !c.MayReference("p", "b") {
		t.Errorf("MayReference wrong")
	}
	for _, v := range []string{"0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		if _, err := Load([]byte(`{"cniVersion":"` + v + `","name":"p","type":"plexus","delegates":[{"type":"bridge"}]}`)); err != nil {
			t.Errorf("cniVersion %s: %v", v, err)
		}
	}
}

func TestLoadBad(t *testing.T) {
	tests := []struct{ in, want string }{
		{``, `not a JSON object`},
		{`[]`, `not a JSON object`},
		{`{"cniVersion":"1.1.0"`, `not a JSON object`},
		{`{"name":"p","type":"plexus","clusterNetwork":"x"}`, `key "cniVersion": missing`},
		{`{"cniVersion":"9.9.9","name":"p","clusterNetwork":"x"}`, `key "cniVersion": "9.9.9" is not supported`},
		{`{"cniVersion":"0.1.0","name":"p","clusterNetwork":"x"}`, `key "cniVersion": "0.1.0"`},
		{`{"cniVersion":"1.1.0","type":"plexus","clusterNetwork":"x"}`, `key "name": missing`},
		{`{` + base + `}`, `no primary network: set key "clusterNetwork"`},
		{`{` + base + `,"delegates":[]}`, `no primary network`},
		{`{` + base + `,"clusterNetwork":"x","delegates":[{"type":"bridge"}]}`, `keys "clusterNetwork" and "delegates" both set`},
		{`{` + base + `,"delegates":[1]}`, `key "delegates"[0]: not a JSON object`},
		{`{` + base + `,"delegates":[{"name":"x"}]}`, `key "delegates"[0]: neither "type" nor "plugins" set`},
		{`{` + base + `,"delegates":{"type":"bridge"}}`, `key "delegates": want a list`},
		{`{` + base + `,"clusterNetwork":"x","bogus":1}`, `unknown key "bogus"`},
		{`{` + base + `,"clusterNetwork":"x","clusternetwork":"y"}`, `unknown key "clusternetwork"`},
		{`{` + base + `,"clusterNetwork":"x","namespaceisolation":true}`, `unknown key "namespaceisolation"`},
		{`{` + base + `,"clusterNetwork":5}`, `key "clusterNetwork": want a string, got JSON number`},
		{`{` + base + `,"clusterNetwork":"x","namespaceIsolation":"true"}`, `key "namespaceIsolation": want a boolean, got JSON string`},
		{`{` + base + `,"clusterNetwork":"x","defaultNetworks":"a"}`, `key "defaultNetworks": want a list, got JSON string`},
		{`{` + base + `,"clusterNetwork":"x","defaultNetworks":[1]}`, `key "defaultNetworks": want a string`},
		{`{` + base + `,"clusterNetwork":"x","systemNamespaces":"kube-system"}`, `key "systemNamespaces": want a list`},
		{`{` + base + `,"clusterNetwork":"x","globalNamespaces":["a"]}`, `key "globalNamespaces": want a string`},
		{`{` + base + `,"clusterNetwork":"x","logToStderr":1}`, `key "logToStderr": want a boolean`},
		{`{` + base + `,"clusterNetwork":"x","readinessTimeout":"10s"}`, `key "readinessTimeout": want a number`},
		{`{` + base + `,"clusterNetwork":"x","readinessTimeout":-1}`, `key "readinessTimeout": must not be negative`},
		{`{` + base + `,"clusterNetwork":"x","capabilities":[]}`, `key "capabilities": want an object`},
		{`{` + base + `,"clusterNetwork":"x","capabilities":{"ips":"yes"}}`, `key "capabilities": want a boolean, got JSON string`},
		{`{` + base + `,"clusterNetwork":"x","cniDir":"relative/dir"}`, `key "cniDir": "relative/dir" is not an absolute path`},
		{`{` + base + `,"clusterNetwork":"x","confDir":"etc"}`, `key "confDir"`},
		{`{` + base + `,"clusterNetwork":"x","binDir":"bin"}`, `key "binDir"`},
		{`{` + base + `,"clusterNetwork":"x","kubeconfig":"kc"}`, `key "kubeconfig"`},
		{`{` + base + `,"clusterNetwork":"x","networksDir":"nets"}`, `key "networksDir"`},
		{`{` + base + `,"clusterNetwork":"x","logFile":"log"}`, `key "logFile"`},
		{`{` + base + `,"clusterNetwork":"x","logLevel":"loud"}`, `key "logLevel": "loud" is not one of`},
		{`{` + base + `,"clusterNetwork":"x","multusNamespace":"a","plexusNamespace":"b"}`, `keys "plexusNamespace" and "multusNamespace" are the same setting`},
		{`{` + base + `,"clusterNetwork":"x","systemNamespaces":["a b"]}`, `namespace "a b"`},
		{`{` + base + `,"clusterNetwork":"x","globalNamespaces":"a,b/c"}`, `namespace "b/c"`},
		{`{` + base + `,"clusterNetwork":"x","runtimeConfig":[]}`, `key "runtimeConfig": want an object`},
	}
	for _, tc := range tests {
		_, err := Load([]byte(tc.in))
		if err == nil {
			t.Errorf("Load(%s): no error, want %q", tc.in, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Load(%s):\n  error %q\n  want  %q", tc.in, err, tc.want)
		}
	}
	if len(tests) < 30 {
		t.Fatalf("only %d bad inputs", len(tests))
	}
}

// FuzzLoad: Load never panics, and an accepted config always has a primary
// network, a supported version and absolute directories.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(`{` + base + `,"clusterNetwork":"x"}`))
	f.Add([]byte(`{` + base + `,"delegates":[{"type":"bridge"}],"cniDir":"/x"}`))
	f.Add([]byte(`{"cniVersion":"0.3.1","name":"n","readinessIndicatorFile":"/r","clusterNetwork":"/etc/cni/net.d"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Load(b)
		if err != nil {
			return
		}
		if c.ClusterNetwork == "" && len(c.Delegates) == 0 {
			t.Fatal("accepted a config without a primary network")
		}
		if !supportedVersion(c.CNIVersion) || c.CNIDir == "" || c.CNIDir[0] != '/' {
			t.Fatalf("accepted an invalid config: %+v", c)
		}
	})
}

func load(t *testing.T, extra string) *Conf {
	t.Helper()
	c, err := Load([]byte(`{` + base + `,"clusterNetwork":"/etc/cni/net.d/10-primary.conflist"` + extra + `}`))
	if err != nil {
		t.Fatalf("Load(%s): %v", extra, err)
	}
	return c
}

// TestMultusDefaults: unset keys mean what they mean in Multus.
func TestMultusDefaults(t *testing.T) {
	tests := []struct {
		name, extra string
		global      []string
		stderr      bool
	}{
		{"unset", ``, []string{"default"}, true},
		{"globalNamespaces empty (Multus: default)", `,"globalNamespaces":""`, []string{"default"}, true},
		{"globalNamespaces set", `,"globalNamespaces":"shared, net"`, []string{"shared", "net"}, true},
		{"logToStderr false", `,"logToStderr":false`, []string{"default"}, false},
		{"logToStderr true", `,"logToStderr":true`, []string{"default"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := load(t, tc.extra)
			if got := c.GlobalNamespaceList(); strings.Join(got, ",") != strings.Join(tc.global, ",") {
				t.Errorf("globalNamespaces = %v, want %v", got, tc.global)
			}
			if c.LogToStderr != tc.stderr || c.Logging().ToStderr != tc.stderr {
				t.Errorf("logToStderr = %v, want %v", c.LogToStderr, tc.stderr)
			}
		})
	}
	c := load(t, `,"namespaceIsolation":true`)
	if !c.MayReference("tenant", "default") || c.MayReference("tenant", "other") {
		t.Error("under isolation, NADs in namespace default are global by default (Multus), others are not")
	}
}

// TestMultusKeys: every key of Multus's configs is either taken with
// Multus's meaning or refused naming the key and what to use instead —
// never "unknown key". The list is Multus 4.x's pkg/types NetConf (with the
// CNI NetConf it embeds), pkg/server/config MultusConf, pkg/server
// ControllerNetConf and the shim's config.
func TestMultusKeys(t *testing.T) {
	values := map[string]string{
		"cniVersion": `"1.1.0"`, "name": `"n"`, "type": `"plexus"`, "capabilities": `{"portMappings":true}`,
		"ipam": `{}`, "dns": `{}`, "prevResult": `{}`, "cni.dev/valid-attachments": `[]`,
		"confDir": `"/etc/cni/multus/net.d"`, "cniDir": `"/var/lib/cni/multus"`, "binDir": `"/opt/cni/bin"`,
		"delegates": `[{"type":"bridge"}]`, "clusterNetwork": `"/etc/cni/net.d/10-primary.conflist"`,
		"defaultNetworks": `["a"]`, "kubeconfig": `"/etc/cni/net.d/multus.d/multus.kubeconfig"`,
		"logFile": `"/var/log/multus.log"`, "logLevel": `"verbose"`, "logToStderr": `false`,
		"logOptions": `{"maxAge":1,"maxSize":2,"maxBackups":3,"compress":false}`, "runtimeConfig": `{}`,
		"readinessindicatorfile": `"/run/ready"`, "namespaceIsolation": `true`, "globalNamespaces": `"a,b"`,
		"auxiliaryCNIChainName": `"chain"`, "systemNamespaces": `["kube-system"]`, "multusNamespace": `"kube-system"`,
		"retryDeleteOnError": `true`,
	}
	refused := map[string]string{
		"cniConfigDir": `--cni-conf-dir`, "multusAutoconfigDir": `--cni-conf-dir`, "multusConfigFile": `plexus-install`,
		"multusMasterCNI": `--primary-config`, "forceCNIVersion": `"cniVersion"`, "overrideNetworkName": `"name"`,
		"daemonSocketDir": `"daemonSocket"`, "socketDir": `plexusd --socket`, "chrootDir": `remove the key`,
		"perNodeCertificate": `"kubeconfig"`, "connectionLimit": `remove the key`, "metricsPort": `plexusd --metrics-address`,
		"enablePprof": `remove the key`,
	}
	for key, v := range values {
		t.Run(key, func(t *testing.T) {
			cfg := map[string]json.RawMessage{"cniVersion": json.RawMessage(`"1.1.0"`), "name": json.RawMessage(`"n"`)}
			if key != "delegates" {
				cfg["clusterNetwork"] = json.RawMessage(`"/etc/cni/net.d/10-primary.conflist"`)
			}
			cfg[key] = json.RawMessage(v)
			b, _ := json.Marshal(cfg)
			if _, err := Load(b); err != nil {
				t.Fatalf("Multus key %q refused: %v", key, err)
			}
		})
	}
	for key, instead := range refused {
		t.Run(key, func(t *testing.T) {
			_, err := Load([]byte(`{` + base + `,"clusterNetwork":"x","` + key + `":1}`))
			want := `key "` + key + `": plexus does not support it`
			if err == nil || !strings.HasPrefix(err.Error(), "plexus config: "+want) || !strings.Contains(err.Error(), instead) {
				t.Fatalf("error %v, want %q ... %q", err, want, instead)
			}
		})
	}
}

// TestMultusKeyMeaning: the Multus keys plexus implements carry their value.
func TestMultusKeyMeaning(t *testing.T) {
	c := load(t, `,"retryDeleteOnError":true,"auxiliaryCNIChainName":"vendor-chain","logFile":"/var/log/plexus.log","logLevel":"debug","logOptions":{"maxAge":1,"maxSize":2,"maxBackups":3,"compress":false},"logFormat":"json","strictAnnotations":true`)
	if !c.RetryDeleteOnError || !c.StrictAnnotations || c.AuxiliaryChainDir() != "/etc/cni/net.d/vendor-chain" {
		t.Errorf("retryDeleteOnError/strictAnnotations/auxiliaryCNIChainName: %+v", c)
	}
	got := c.Logging()
	if got.File != "/var/log/plexus.log" || got.Level != "debug" || !got.ToStderr || got.Format != "json" ||
		got.Rotation.MaxAgeDays != 1 || got.Rotation.MaxSizeMB != 2 || got.Rotation.MaxBackups != 3 || got.Rotation.Compress {
		t.Errorf("Logging() = %+v", got)
	}
	// Multus's rotation defaults: 100 MB, 5 backups, 5 days, compressed;
	// a partial logOptions keeps the defaults of the rest.
	for extra, want := range map[string]string{
		``:                                 `{100 5 5 true}`,
		`,"logOptions":{}`:                 `{100 5 5 true}`,
		`,"logOptions":{"maxSize":7}`:      `{7 5 5 true}`,
		`,"logOptions":{"maxAge":0}`:       `{100 0 5 true}`,
		`,"logOptions":{"compress":false}`: `{100 5 5 false}`,
	} {
		if got := fmt.Sprint(load(t, extra).Logging().Rotation); got != want {
			t.Errorf("%s: rotation %s, want %s", extra, got, want)
		}
	}
	if c := load(t, ``); c.StrictAnnotations || c.RetryDeleteOnError || c.AuxiliaryChainDir() != "" || c.Logging().Format != "" {
		t.Errorf("defaults: %+v", c)
	}
}

func TestAuxiliaryChain(t *testing.T) {
	dir := t.TempDir()
	primary := filepath.Join(dir, "10-primary.conflist")
	chain := filepath.Join(dir, "vendor-chain")
	if err := os.Mkdir(chain, 0o755); err != nil {
		t.Fatal(err)
	}
	c := load(t, `,"auxiliaryCNIChainName":"vendor-chain"`)
	c.ClusterNetwork = primary
	if l, err := c.AuxiliaryChain(); l != nil || err != nil {
		t.Fatalf("empty chain dir: %v %v, want no chain (as Multus)", l, err)
	}
	for name, body := range map[string]string{
		"20-sysctl.conf": `{"type":"tuning","sysctl":{"net.ipv4.conf.IFNAME.arp_filter":"1"}}`,
		"10-mark.conf":   `{"type":"sbr"}`,
		"ignored.json":   `{"type":"bogus"}`,
	} {
		if err := os.WriteFile(filepath.Join(chain, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l, err := c.AuxiliaryChain()
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, p := range l.Plugins {
		types = append(types, p.Network.Type)
	}
	if l.Name != "vendor-chain" || l.CNIVersion != "1.1.0" || strings.Join(types, ",") != "passthru,sbr,tuning" {
		t.Fatalf("chain %s %s %v", l.Name, l.CNIVersion, types)
	}
	if !strings.Contains(string(l.Bytes), `"arp_filter":"1"`) && !strings.Contains(string(l.Bytes), `arp_filter`) {
		t.Fatalf("chain bytes lack the plugin's config: %s", l.Bytes)
	}
	if err := os.WriteFile(filepath.Join(chain, "30-bad.conf"), []byte(`{`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AuxiliaryChain(); err == nil || !strings.Contains(err.Error(), `key "auxiliaryCNIChainName"`) {
		t.Fatalf("bad chain file: %v", err)
	}
	if l, err := load(t, ``).AuxiliaryChain(); l != nil || err != nil {
		t.Fatalf("unset: %v %v", l, err)
	}
	// A chain directory that cannot be read keeps its *fs.PathError, so
	// plexusd, reading it through its container's mounts, answers
	// "unavailable" and the shim resolves in the runtime's context.
	if err := os.RemoveAll(chain); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(chain, nil, 0o644); err != nil { // ENOTDIR
		t.Fatal(err)
	}
	var pe *fs.PathError
	if _, err := c.AuxiliaryChain(); err == nil || !strings.Contains(err.Error(), `key "auxiliaryCNIChainName"`) || !errors.As(err, &pe) {
		t.Fatalf("unreadable chain directory: %v, want an error naming the key that wraps the *fs.PathError", err)
	}
}

func TestTypeAllowed(t *testing.T) {
	policy := `,"delegatePolicy":{"default":{"allow":["bridge","macvlan"]},"namespaces":{"sriov-tenant":{"allow":["sriov","host-device"]},"open":{"allow":["*"]},"closed":{"allow":[]}}}`
	tests := []struct {
		name, extra, ns, typ, wantErr string
	}{
		{"no policy: any type", ``, "a", "sriov", ""},
		{"no policy: multus refused", ``, "a", "multus", `plugin type "multus" is a meta-plugin`},
		{"no policy: plexus refused", ``, "a", "plexus", `plugin type "plexus"`},
		{"no policy: multus-shim refused", ``, "a", "multus-shim", `plugin type "multus-shim"`},
		{"default allows", policy, "a", "bridge", ""},
		{"default refuses", policy, "a", "sriov", `plugin type "sriov" is not allowed in namespace "a" (allowed there: bridge, macvlan; plexus config key "delegatePolicy")`},
		{"namespace list adds to default", policy, "sriov-tenant", "sriov", ""},
		{"namespace keeps default's types", policy, "sriov-tenant", "bridge", ""},
		{"namespace list refuses the rest", policy, "sriov-tenant", "ipvlan", `plugin type "ipvlan" is not allowed in namespace "sriov-tenant" (allowed there: bridge, host-device, macvlan, sriov;`},
		{"wildcard", policy, "open", "ipvlan", ""},
		{"wildcard still refuses meta-plugins", policy, "open", "multus", `meta-plugin`},
		{"empty list adds none", policy, "closed", "host-device", `(allowed there: bridge, macvlan;`},
		{"empty type", policy, "a", "", `plugin type ""`},
		{"namespaces only: others get none", `,"delegatePolicy":{"namespaces":{"t":{"allow":["macvlan"]}}}`, "x", "sriov", `(allowed there: none;`},
		{"namespaces only: listed bound", `,"delegatePolicy":{"namespaces":{"t":{"allow":["macvlan"]}}}`, "t", "sriov", `plugin type "sriov" is not allowed in namespace "t"`},
		{"empty default allows none", `,"delegatePolicy":{"default":{"allow":[]}}`, "t", "bridge", `(allowed there: none;`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := load(t, tc.extra).TypeAllowed(tc.ns, tc.typ)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
			var te *TypeNotAllowedError
			if !errors.As(err, &te) || te.Namespace != tc.ns || te.Type != tc.typ {
				t.Fatalf("error %#v is not a TypeNotAllowedError for %s/%s", err, tc.ns, tc.typ)
			}
			if i := strings.Index(err.Error(), "plugin type"); i < 0 || i > 100 {
				t.Fatalf("error %q does not name the type within 100 characters", err)
			}
		})
	}
}

// TestLoadBadNewKeys: the keys added for Multus compatibility and plexus's
// own are checked, naming the key.
func TestLoadBadNewKeys(t *testing.T) {
	p := `{` + base + `,"clusterNetwork":"/etc/cni/net.d/p.conf",`
	tests := []struct{ in, want string }{
		{p + `"logOptions":[]}`, `key "logOptions": want an object`},
		{p + `"logOptions":{"maxage":1}}`, `key "logOptions": unknown key "maxage"`},
		{p + `"logOptions":{"maxAge":"5"}}`, `key "logOptions.maxAge": want a number`},
		{p + `"logOptions":{"maxSize":-1}}`, `key "logOptions.maxSize": must not be negative`},
		{p + `"logOptions":{"compress":"yes"}}`, `key "logOptions.compress": want a boolean`},
		{p + `"logFormat":"xml"}`, `key "logFormat": "xml" is not text or json`},
		{p + `"strictAnnotations":"yes"}`, `key "strictAnnotations": want a boolean`},
		{p + `"retryDeleteOnError":1}`, `key "retryDeleteOnError": want a boolean`},
		{p + `"auxiliaryCNIChainName":"../etc"}`, `key "auxiliaryCNIChainName": "../etc" is not a CNI network name`},
		{p + `"auxiliaryCNIChainName":"a/b"}`, `key "auxiliaryCNIChainName": "a/b"`},
		{`{` + base + `,"clusterNetwork":"kindnet","auxiliaryCNIChainName":"c"}`, `key "auxiliaryCNIChainName": needs key "clusterNetwork" to be a file path`},
		{`{` + base + `,"delegates":[{"type":"bridge"}],"auxiliaryCNIChainName":"c"}`, `key "auxiliaryCNIChainName": needs key "clusterNetwork"`},
		{p + `"delegatePolicy":[]}`, `key "delegatePolicy": want an object`},
		{p + `"delegatePolicy":{"allow":["bridge"]}}`, `key "delegatePolicy": unknown key "allow"`},
		{p + `"delegatePolicy":{"default":{"allowed":["bridge"]}}}`, `key "delegatePolicy.default": unknown key "allowed"`},
		{p + `"delegatePolicy":{"default":{}}}`, `key "delegatePolicy.default.allow": missing`},
		{p + `"delegatePolicy":{"default":{"allow":"bridge"}}}`, `key "delegatePolicy.default.allow": want a list`},
		{p + `"delegatePolicy":{"default":{"allow":["multus"]}}}`, `key "delegatePolicy.default.allow": "multus" is a meta-plugin`},
		{p + `"delegatePolicy":{"default":{"allow":[""]}}}`, `key "delegatePolicy.default.allow": "" is not a plugin type`},
		{p + `"delegatePolicy":{"namespaces":{"ns1":{"deny":["x"]}}}}`, `key "delegatePolicy.namespaces.ns1": unknown key "deny"`},
		{p + `"delegatePolicy":{"namespaces":{"NS":{"allow":[]}}}}`, `key "delegatePolicy.namespaces.NS": "NS" is not a namespace name`},
		{p + `"delegatePolicy":{"namespaces":{"ns1":{"allow":["plexus"]}}}}`, `key "delegatePolicy.namespaces.ns1.allow": "plexus" is a meta-plugin`},
	}
	for _, tc := range tests {
		_, err := Load([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Load(%s):\n  error %v\n  want  %q", tc.in, err, tc.want)
			continue
		}
		if i := strings.Index(err.Error(), tc.want[:strings.Index(tc.want, ":")]); i > 100 {
			t.Errorf("error %q names the key after 100 characters", err)
		}
	}
}
