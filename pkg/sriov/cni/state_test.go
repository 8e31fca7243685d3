package cni

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Save writes the schema version; a file without one (plexus before the
// field existed) still loads; a newer version is refused naming the field.
func TestStateVersion(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	st := &State{DeviceID: "0000:3b:02.0", ContainerID: "c1", IfName: "net1", PFName: "ens1f0", VFIndex: 2}
	if err := s.Save(st); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(s.Dir, "0000:3b:02.0.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil || m["version"] != float64(1) {
		t.Errorf("saved state has version %v (%v): %s", m["version"], err, b)
	}
	left, _ := filepath.Glob(filepath.Join(s.Dir, ".*"))
	if len(left) != 0 {
		t.Errorf("temp files left: %v", left)
	}

	old := `{"deviceID":"0000:3b:02.1","containerID":"c2","ifName":"net2","netns":"/run/netns/x","pfName":"ens1f0",
	  "vfIndex":3,"userspace":false,"origPF":{"mac":"02:00:00:00:00:01","vlan":0,"qos":0,"vlanProto":33024,
	  "spoofchk":true,"trust":false,"linkState":0,"minTxRate":0,"maxTxRate":0},"applied":["vlan"],
	  "origName":"ens1f0v3","origMAC":"02:00:00:00:00:09","origMTU":1500,"origUp":true,"mac":"02:00:00:00:00:09","podIndex":7}`
	if err := os.WriteFile(filepath.Join(s.Dir, "0000:3b:02.1.json"), []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load("0000:3b:02.1")
	if err != nil || got == nil || got.ContainerID != "c2" || got.VFIndex != 3 || got.OrigPF.MAC != "02:00:00:00:00:01" ||
		got.OrigName != "ens1f0v3" || got.PodIndex != 7 || len(got.Applied) != 1 {
		t.Fatalf("unversioned state %+v %v", got, err)
	}
	if id, err := s.FindByAttachment("c2", "net2"); err != nil || id != "0000:3b:02.1" {
		t.Errorf("FindByAttachment on unversioned state: %q %v", id, err)
	}

	if err := os.WriteFile(filepath.Join(s.Dir, "0000:3b:02.2.json"), []byte(`{"version":2,"deviceID":"0000:3b:02.2"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load("0000:3b:02.2"); err == nil || !strings.Contains(err.Error(), `"version" 2`) {
		t.Errorf("newer state version: %v", err)
	}
}
