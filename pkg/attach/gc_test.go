package attach

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/plexus-cni/plexus/pkg/podnet"
)

func conflist(name string, plugins ...string) string {
	return `{"cniVersion":"1.0.0","name":"` + name + `","plugins":[` + strings.Join(plugins, ",") + `]}`
}

func TestGCLists(t *testing.T) {
	pri := conflist("pri", `{"type":"bridge"}`)
	pri2 := conflist("pri", `{"type":"bridge","bridge":"other"}`) // same network name, other bytes
	mv := conflist("macvlan-conf", `{"type":"macvlan"}`)
	sr := conflist("sriov-net", `{"type":"sriov"}`)
	entries := []struct {
		entry *podnet.Entry
		valid bool
	}{
		{&podnet.Entry{ContainerID: "c1", Attachments: []podnet.Attachment{
			{Network: "kube-system/pri", IfName: "eth0", ConfList: json.RawMessage(pri)},
			{Network: "a/mv", IfName: "net1", ConfList: json.RawMessage(mv)},
		}}, true},
		{&podnet.Entry{ContainerID: "c2", Attachments: []podnet.Attachment{
			{Network: "kube-system/pri", IfName: "eth0", ConfList: json.RawMessage(pri2)},
			{Network: "a/sriov", IfName: "net1", ConfList: json.RawMessage(sr)},
		}}, false},
		{&podnet.Entry{ContainerID: "c3", Attachments: []podnet.Attachment{
			{Network: "a/broken", IfName: "net1", ConfList: json.RawMessage(`{"name":`)},
			{Network: "a/sriov", IfName: "net2", ConfList: json.RawMessage(sr)},
			{Network: "kube-system/pri", IfName: "eth0", ConfList: json.RawMessage(pri2)},
		}}, true},
	}
	g := newGCLists()
	for _, e := range entries {
		g.add(e.entry, e.valid)
	}
	if want := []string{"pri", "macvlan-conf", "sriov-net"}; !reflect.DeepEqual(g.order, want) {
		t.Errorf("order %v, want %v", g.order, want)
	}
	want := map[string]*gcList{
		"pri":          {conf: []byte(pri), valid: []types.GCAttachment{{ContainerID: "c1", IfName: "eth0"}, {ContainerID: "c3", IfName: "eth0"}}},
		"macvlan-conf": {conf: []byte(mv), valid: []types.GCAttachment{{ContainerID: "c1", IfName: "net1"}}},
		// Only c2 (not valid) and c3 use it: c3's is the only valid one,
		// the conf is the first seen.
		"sriov-net": {conf: []byte(sr), valid: []types.GCAttachment{{ContainerID: "c3", IfName: "net2"}}},
	}
	if len(g.byName) != len(want) {
		t.Errorf("byName has %d networks, want %d", len(g.byName), len(want))
	}
	for name, w := range want {
		d := g.byName[name]
		if d == nil {
			t.Errorf("network %q missing", name)
			continue
		}
		if string(d.conf) != string(w.conf) {
			t.Errorf("network %q: conf %s, want %s", name, d.conf, w.conf)
		}
		if !reflect.DeepEqual(d.valid, w.valid) {
			t.Errorf("network %q: valid %+v, want %+v", name, d.valid, w.valid)
		}
	}

	// A network used only by containers that are gone is still listed
	// (its delegate's GC frees everything), with no valid attachment.
	g = newGCLists()
	g.add(entries[1].entry, false)
	if d := g.byName["sriov-net"]; d == nil || d.valid != nil {
		t.Errorf("network of gone containers only: %+v, want listed with no valid attachments", d)
	}
}
