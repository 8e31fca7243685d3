package deviceplugin

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
)

// regState is what readiness needs of the Manager: the pools it serves and
// the kubelet.sock incarnation each registered with. The Manager stores a
// fresh copy after each change, so a probe never waits for its lock (a
// registration can hold it for seconds).
type regState struct {
	servers    []string          // resource names served, sorted
	registered map[string]fileID // resource -> kubelet.sock it registered with
}

// snapshotLocked stores the current regState for Ready; m.mu is held.
func (m *Manager) snapshotLocked() {
	s := &regState{registered: make(map[string]fileID, len(m.registered))}
	for n := range m.servers {
		s.servers = append(s.servers, n)
	}
	sort.Strings(s.servers)
	for n, id := range m.registered {
		s.registered[n] = id
	}
	m.state.Store(s)
}

// NotReady returns nil once every pool of the configuration is registered
// with the kubelet now serving kubelet.sock, else the reason: the first
// configuration not served yet, kubelet.sock missing, or the resources not
// (yet, or not again since kubelet restarted) registered.
func (m *Manager) NotReady() error {
	sock := filepath.Join(m.opts.PluginDir, KubeletSocketName)
	return notReady(m.state.Load(), sock, statID(sock))
}

// notReady is NotReady's decision: st is nil before the first
// configuration is served; kubelet is kubelet.sock's current incarnation
// (zero when absent). A registration counts only with the kubelet.sock it
// was made with: kubelet forgets every plugin when it restarts (and
// replaces its socket).
func notReady(st *regState, sock string, kubelet fileID) error {
	if st == nil {
		return fmt.Errorf("the configuration is not served yet")
	}
	if kubelet == (fileID{}) {
		if len(st.servers) == 0 {
			return nil
		}
		return fmt.Errorf("kubelet's registration socket %s is not there: %s not registered", sock, strings.Join(st.servers, ", "))
	}
	var missing []string
	for _, n := range st.servers {
		if st.registered[n] != kubelet {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("not registered with the kubelet at %s (yet, or again since it restarted): %s", sock, strings.Join(missing, ", "))
	}
	return nil
}
