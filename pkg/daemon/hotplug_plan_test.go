package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/plexus-cni/plexus/pkg/podnet"
	"github.com/plexus-cni/plexus/pkg/selection"
)

// planPass alone, without root, namespaces or delegates: what a pass
// decides from the entry (with its origins) and the annotation.

// att is an attachment "network@ifname" of origin o, finished unless the
// spec ends with "?".
func att(spec, o string) podnet.Attachment {
	done := !strings.HasSuffix(spec, "?")
	spec = strings.TrimSuffix(spec, "?")
	n, i, _ := strings.Cut(spec, "@")
	a := podnet.Attachment{Network: n, IfName: i, Origin: o, Primary: o == podnet.OriginPrimary}
	if done {
		a.Added, a.Result = true, json.RawMessage(`{}`)
	}
	return a
}

func TestPlanPass(t *testing.T) {
	prim := att("kube-system/pri@eth0", podnet.OriginPrimary)
	dn := att("kube-system/dn@net1", podnet.OriginDefaultNetworks)
	del := att("delegate-1@net1", podnet.OriginDelegates)
	aux := att("chain@net3", podnet.OriginAuxiliary)
	an := func(spec string) podnet.Attachment { return att(spec, podnet.OriginAnnotation) }
	for _, tc := range []struct {
		name    string
		atts    []podnet.Attachment
		ann     string
		primary string
		max     int
		skip    map[int]bool
		// want: detach as entry indexes, attach as element:ifName,
		// refusals as substrings, notReconciled's reason.
		detach   []int
		undo     int
		attach   []string
		refusals []string
		reason   string
	}{
		{name: "nothing to do", atts: []podnet.Attachment{prim, an("default/a@net1")}, ann: "a"},
		{name: "addition named by ADD's rule", atts: []podnet.Attachment{prim, an("default/a@net1")}, ann: "a,b", attach: []string{"1:net2"}},
		{name: "removal keeps the other by network", atts: []podnet.Attachment{prim, an("default/a@net1"), an("default/b@net2")}, ann: "b", detach: []int{1}},
		{name: "removals last attached first", atts: []podnet.Attachment{prim, an("default/a@net1"), an("default/b@net2")}, ann: "", detach: []int{2, 1}},
		{name: "named element matches its interface", atts: []podnet.Attachment{prim, an("default/a@x"), an("default/a@y")}, ann: "a@y", detach: []int{1}},
		{name: "unnamed prefers ADD's name", atts: []podnet.Attachment{prim, an("default/a@net7"), an("default/a@net1")}, ann: "a", detach: []int{1}},
		{
			// The config's attachments come from the entry: dn is kept and
			// counted in ADD's names whatever the config says now.
			name: "defaultNetwork kept, counted in names", atts: []podnet.Attachment{prim, dn, an("default/a@net2")}, ann: "",
			detach: []int{2},
		},
		{name: "defaultNetwork offsets names", atts: []podnet.Attachment{prim, dn}, ann: "a", attach: []string{"0:net2"}},
		{name: "inline delegate kept and offsets names", atts: []podnet.Attachment{prim, del}, ann: "a", attach: []string{"0:net2"}},
		{
			name: "same network in the annotation is another attachment", atts: []podnet.Attachment{prim, dn, an("kube-system/dn@net2")},
			ann: "kube-system/dn", detach: nil,
		},
		{
			name: "auxiliary kept; its name refused", atts: []podnet.Attachment{prim, an("default/a@net1"), att("chain@net2", podnet.OriginAuxiliary)},
			ann: "a,b", refusals: []string{`"net2" is network "chain"'s`, "auxiliaryCNIChainName"},
		},
		{name: "aux not offsetting names", atts: []podnet.Attachment{prim, dn, aux}, ann: "a", attach: []string{"0:net2"}},
		{name: "primary's name refused", atts: []podnet.Attachment{prim}, ann: "a@eth0", refusals: []string{`"eth0" is the primary's`}},
		{name: "defaultNetwork's name refused", atts: []podnet.Attachment{prim, dn}, ann: "a@net1", refusals: []string{`"net1" is network "kube-system/dn"'s`, "defaultNetworks"}},
		{name: "primary change refused", atts: []podnet.Attachment{prim}, ann: "", primary: "kube-system/other", refusals: []string{"cannot be changed on a running pod; recreate the pod"}},
		{name: "primary unchanged", atts: []podnet.Attachment{prim}, ann: "", primary: "kube-system/pri"},
		{
			name: "unfinished addition undone first, then re-added", atts: []podnet.Attachment{prim, an("default/a@net1"), an("default/b@net2?")},
			ann: "a,b", detach: []int{2}, undo: 1, attach: []string{"1:net2"},
		},
		{
			name: "over the element limit: refused, attached ones kept", atts: []podnet.Attachment{prim, an("default/c@net3")},
			ann: "a,b,c,d", max: 2, attach: []string{"0:net1", "1:net2"}, refusals: []string{"4 elements", "limit 2 per pod", "1 not attached"},
		},
		{name: "elements failed in this state skipped", atts: []podnet.Attachment{prim}, ann: "a,b,c", skip: map[int]bool{1: true}, attach: []string{"0:net1", "2:net3"}},
		{name: "bad annotation touches nothing but unfinished", atts: []podnet.Attachment{prim, an("default/a@net1"), an("default/b@net2?")}, ann: `[{"name"`, detach: []int{2}, undo: 1, refusals: []string{"nothing attached or detached"}},
		{name: "entry without origins", atts: []podnet.Attachment{prim, att("default/a@net1", "")}, ann: "", reason: reasonNoOrigin},
		{name: "unknown origin", atts: []podnet.Attachment{prim, att("default/a@net1", "future")}, ann: "", reason: reasonUnknownOrigin},
		{name: "primary not first", atts: []podnet.Attachment{an("default/a@net1"), prim}, ann: "", reason: reasonUnknownOrigin},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := planInput{atts: tc.atts, primary: tc.primary, maxElements: tc.max, skip: tc.skip}
			els, _, err := selection.ParseWithWarnings(tc.ann, "default", false)
			if err != nil {
				in.annotationErr = err.Error()
			}
			in.elems = els
			p, err := planPass(in)
			if tc.reason != "" {
				var nr *notReconciled
				if !errors.As(err, &nr) || nr.reason != tc.reason {
					t.Fatalf("error %v, want notReconciled %q", err, tc.reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(p.detach, tc.detach) || p.undo != tc.undo {
				t.Errorf("detach %v (undo %d), want %v (undo %d)", p.detach, p.undo, tc.detach, tc.undo)
			}
			var got []string
			for _, a := range p.attach {
				got = append(got, fmt.Sprintf("%d:%s", a.elem, a.ifName))
			}
			if !reflect.DeepEqual(got, tc.attach) {
				t.Errorf("attach %v, want %v", got, tc.attach)
			}
			all := strings.Join(p.refusals, "\n")
			for _, w := range tc.refusals {
				if !strings.Contains(all, w) {
					t.Errorf("refusals %q lack %q", p.refusals, w)
				}
			}
			if len(tc.refusals) == 0 && len(p.refusals) > 0 {
				t.Errorf("refusals %q, want none", p.refusals)
			}
		})
	}
}
