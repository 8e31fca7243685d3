package deviceplugin

import (
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

func TestNotReadyDecision(t *testing.T) {
	k1, k2 := fileID{1, 10, 5}, fileID{1, 10, 6} // k2: same inode, new socket
	both := []string{"plexus.io/a", "plexus.io/b"}
	for _, c := range []struct {
		name    string
		st      *regState
		kubelet fileID
		want    string // "" for ready; else substrings, "|"-separated
	}{
		{"before the first configuration", nil, k1, "configuration is not served yet"},
		{"no kubelet socket", &regState{servers: both, registered: map[string]fileID{}}, fileID{}, "is not there: plexus.io/a, plexus.io/b not registered"},
		{"none registered", &regState{servers: both, registered: map[string]fileID{}}, k1, "not registered with the kubelet at /dp/kubelet.sock|plexus.io/a, plexus.io/b"},
		{"one registered", &regState{servers: both, registered: map[string]fileID{"plexus.io/a": k1}}, k1, ": plexus.io/b"},
		{"all registered", &regState{servers: both, registered: map[string]fileID{"plexus.io/a": k1, "plexus.io/b": k1}}, k1, ""},
		{"kubelet restarted", &regState{servers: both, registered: map[string]fileID{"plexus.io/a": k1, "plexus.io/b": k2}}, k2, "again since it restarted): plexus.io/a"},
		{"no pools", &regState{registered: map[string]fileID{}}, fileID{}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := notReady(c.st, "/dp/kubelet.sock", c.kubelet)
			if c.want == "" {
				if err != nil {
					t.Fatalf("want ready, got %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("want not ready, got ready")
			}
			for _, w := range strings.Split(c.want, "|") {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("reason %q lacks %q", err, w)
				}
			}
		})
	}
}

// Readiness follows registration with the kubelet stub: ready once both
// pools registered; not ready, naming them, while kubelet.sock is a new
// kubelet's that has not taken their registration; ready again after.
func TestReadinessFollowsRegistration(t *testing.T) {
	e := newTestEnv(t, twoPools, nil)
	e.kubelet.WaitPlugin(t, "plexus.io/sriov_net", 1, 5*time.Second)
	e.kubelet.WaitPlugin(t, "plexus.io/sriov_dpdk", 1, 5*time.Second)
	waitFor(t, 5*time.Second, "ready", func() bool { return e.m.NotReady() == nil })

	// A restarted kubelet that does not answer yet: a new kubelet.sock.
	e.kubelet.Stop()
	if err := e.m.NotReady(); err == nil || !strings.Contains(err.Error(), "plexus.io/sriov_dpdk, plexus.io/sriov_net not registered") {
		t.Fatalf("kubelet gone: %v", err)
	}
	lis, err := net.Listen("unix", e.kubelet.SocketPath())
	if err != nil {
		t.Fatal(err)
	}
	err = e.m.NotReady()
	if err == nil || !strings.Contains(err.Error(), "again since it restarted): plexus.io/sriov_dpdk, plexus.io/sriov_net") {
		t.Fatalf("new kubelet socket: %v", err)
	}
	t.Logf("reason: %v", err)
	lis.Close()
	os.Remove(e.kubelet.SocketPath())

	e.kubelet.Restart(t)
	e.kubelet.WaitPlugin(t, "plexus.io/sriov_net", 2, 10*time.Second)
	e.kubelet.WaitPlugin(t, "plexus.io/sriov_dpdk", 2, 10*time.Second)
	waitFor(t, 5*time.Second, "ready again", func() bool { return e.m.NotReady() == nil })
}

// Before Run has served the first configuration, the manager is not ready.
func TestNotReadyBeforeRun(t *testing.T) {
	m, err := NewManager(Options{ConfigPath: "/nonexistent", PluginDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.NotReady(); err == nil || !strings.Contains(err.Error(), "not served yet") {
		t.Fatalf("got %v", err)
	}
}
