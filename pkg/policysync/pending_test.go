package policysync

import (
	"reflect"
	"testing"
	"time"

	"github.com/plexus-cni/plexus/pkg/netpol"
)

// TestWithPending: interfaces Prepare wrote rules for stay in the plan
// until the cache entry lists them (then they are no longer pending) or
// they expire, so a Sync from an older entry never drops them.
func TestWithPending(t *testing.T) {
	a := func(ifc string) netpol.Attachment {
		return netpol.Attachment{NAD: netpol.NAD{Namespace: "ns", Name: "n-" + ifc}, Interface: ifc}
	}
	for _, tc := range []struct {
		name         string
		pending      []netpol.Attachment
		expired      bool
		entry, want  []netpol.Attachment
		pendingAfter int
	}{
		{"none pending", nil, false, []netpol.Attachment{a("net1")}, []netpol.Attachment{a("net1")}, 0},
		{"ADD before its intent", []netpol.Attachment{a("net1"), a("net2")}, false, nil, []netpol.Attachment{a("net1"), a("net2")}, 2},
		{"hot-plug: entry without net2 yet", []netpol.Attachment{a("net1"), a("net2")}, false, []netpol.Attachment{a("net1")}, []netpol.Attachment{a("net1"), a("net2")}, 1},
		{"entry caught up", []netpol.Attachment{a("net1"), a("net2")}, false, []netpol.Attachment{a("net1"), a("net2")}, []netpol.Attachment{a("net1"), a("net2")}, 0},
		{"expired", []netpol.Attachment{a("net1"), a("net2")}, true, []netpol.Attachment{a("net1")}, []netpol.Attachment{a("net1")}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &podState{pending: tc.pending, pendingUntil: time.Now().Add(time.Minute)}
			if tc.expired {
				st.pendingUntil = time.Now().Add(-time.Second)
			}
			got := st.withPending(tc.entry)
			if !reflect.DeepEqual(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
				t.Errorf("plan's attachments %v, want %v", got, tc.want)
			}
			if len(st.pending) != tc.pendingAfter {
				t.Errorf("%d still pending, want %d", len(st.pending), tc.pendingAfter)
			}
		})
	}
}
