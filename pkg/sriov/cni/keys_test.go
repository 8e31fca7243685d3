package cni

import (
	"fmt"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/plexus-cni/plexus/pkg/testutil"
)

// Keys sriov-cni accepts that plexus does not act on are refused, naming
// the key and what to do instead.
func TestSriovCNIKeysRefused(t *testing.T) {
	base := `"cniVersion":"1.0.0","name":"net1","type":"sriov"`
	for _, tc := range []struct{ conf, want string }{
		{`{` + base + `,"OrigVfState":{"HostIFName":"eth9"}}`, `key "OrigVfState"`},
		{`{` + base + `,"origVfState":{}}`, `key "origVfState"`},
		{`{` + base + `,"VFID":3}`, `key "VFID"`},
		{`{` + base + `,"mtu":20}`, `key "mtu": 20 out of range`},
		{`{` + base + `,"mtu":"1500"}`, `key "mtu": expected int`},
	} {
		_, err := ParseConfig([]byte(tc.conf))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.conf, err, tc.want)
		}
	}
	// master names the PF; it is accepted (sriov-cni derives the PF from deviceID too).
	if _, err := ParseConfig([]byte(`{` + base + `,"master":"ens1f0","pciBusID":"0000:3b:02.0","someUnknownKey":1}`)); err != nil {
		t.Errorf("master/unknown keys: %v", err)
	}
}

// mtu is set on the VF netdev in the pod and reported; DEL restores the
// original MTU. The dns key reaches the result; CNI_ARGS MAC is applied.
func TestMTUDNSAndArgsMAC(t *testing.T) {
	f := newFixture(t, 1, "")
	vf := f.vfs[0]
	podNS := testutil.NewNS(t)
	conf := f.conf("1.1.0", vf.Addr, `"mtu":1400,"dns":{"nameservers":["10.96.0.10"],"search":["svc.local"]}`)
	a := args(podNS, "c1", "net1", conf)
	a.Args = "IgnoreUnknown=1;K8S_POD_NAME=p;MAC=02:cc:00:00:00:07"
	r, err := f.p.Add(a)
	if err != nil {
		t.Fatal(err)
	}
	res := mustCurrent(t, r)
	if res.Interfaces[0].Mtu != 1400 || res.Interfaces[0].Mac != "02:cc:00:00:00:07" {
		t.Errorf("interface %+v", res.Interfaces[0])
	}
	if len(res.DNS.Nameservers) != 1 || res.DNS.Nameservers[0] != "10.96.0.10" || len(res.DNS.Search) != 1 {
		t.Errorf("DNS %+v", res.DNS)
	}
	err = podNS.Do(func(ns.NetNS) error {
		l, err := netlinksafe.LinkByName("net1")
		if err != nil {
			return err
		}
		if l.Attrs().MTU != 1400 || l.Attrs().HardwareAddr.String() != "02:cc:00:00:00:07" {
			return fmt.Errorf("net1 MTU %d MAC %s", l.Attrs().MTU, l.Attrs().HardwareAddr)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.rec.State(f.pfName, vf.Index).MAC; got != "02:cc:00:00:00:07" {
		t.Errorf("PF admin MAC %s", got)
	}
	if err := f.p.Del(a); err != nil {
		t.Fatal(err)
	}
	f.assertVFHome(t, vf)

}
