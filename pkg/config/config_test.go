package config

import (
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
