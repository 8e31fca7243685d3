package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/plexus-cni/plexus/pkg/podnet"
)

func TestPlanGC(t *testing.T) {
	const grace = 2 * time.Minute
	pod := func(ns, name, uid string, ann map[string]string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(uid), Annotations: ann}}
	}
	// A static pod as the API server has it: the mirror pod, whose UID
	// is not the one the runtime passed to the CNI ADD.
	mirror := pod("kube-system", "etcd-node1", "mirror-uid", map[string]string{corev1.MirrorPodAnnotationKey: "3f0c"})
	pods := []*corev1.Pod{
		pod("ns", "web", "uid-web", nil),
		mirror,
		pod("ns", "db-0", "uid-db-0-new", nil), // a StatefulSet pod recreated under its name
	}
	entry := func(ns, name, uid, netns string) *podnet.Entry {
		return &podnet.Entry{PodNamespace: ns, PodName: name, PodUID: uid, NetNS: netns}
	}
	old := grace + time.Second
	for _, tc := range []struct {
		name    string
		cand    gcCandidate
		collect bool
	}{
		{"netns gone", gcCandidate{Age: old, Entry: entry("ns", "web", "uid-web", "/run/netns/a"), NetNS: netnsGone}, true},
		{"netns gone, pod gone", gcCandidate{Age: old, Entry: entry("ns", "old", "uid-old", "/run/netns/a"), NetNS: netnsGone}, true},
		{"netns present, pod gone", gcCandidate{Age: old, Entry: entry("ns", "old", "uid-old", "/run/netns/a"), NetNS: netnsPresent}, false},
		{"netns gone but younger than the grace (ADD in progress)", gcCandidate{Age: grace - time.Second, Entry: entry("ns", "old", "uid-old", "/run/netns/a"), NetNS: netnsGone}, false},
		{"unreadable entry", gcCandidate{Age: old, NetNS: netnsGone}, false},

		// A netns plexusd cannot check is never collected, whatever the pods.
		{"netns unchecked, pod gone", gcCandidate{Age: old, Entry: entry("ns", "old", "uid-old", "/run/netns/a"), NetNS: netnsUnchecked}, false},
		{"/proc netns, pod gone", gcCandidate{Age: old, Entry: entry("ns", "old", "uid-old", "/proc/42/ns/net"), NetNS: netnsUnchecked}, false},
		{"static pod, netns unchecked", gcCandidate{Age: old, Entry: entry("kube-system", "etcd-node1", "3f0c", "/run/netns/a"), NetNS: netnsUnchecked}, false},

		// No netns path: the pods decide, a static pod by its mirror.
		{"no netns, pod here", gcCandidate{Age: old, Entry: entry("ns", "web", "uid-web", ""), NetNS: netnsUnchecked}, false},
		{"no netns, pod gone", gcCandidate{Age: old, Entry: entry("ns", "old", "uid-old", ""), NetNS: netnsUnchecked}, true},
		{"no netns, no pod UID", gcCandidate{Age: old, Entry: entry("ns", "old", "", ""), NetNS: netnsUnchecked}, false},
		{"no netns, static pod matched by ns/name and the mirror annotation", gcCandidate{Age: old, Entry: entry("kube-system", "etcd-node1", "3f0c", ""), NetNS: netnsUnchecked}, false},
		{"no netns, same ns/name but no mirror annotation (recreated pod)", gcCandidate{Age: old, Entry: entry("ns", "db-0", "uid-db-0-old", ""), NetNS: netnsUnchecked}, true},
		{"no netns, a mirror pod of another name", gcCandidate{Age: old, Entry: entry("kube-system", "etcd-node2", "3f0c", ""), NetNS: netnsUnchecked}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cand.ID = "c1"
			got := planGC([]gcCandidate{tc.cand}, pods, grace)
			if (len(got) == 1) != tc.collect || len(got) > 1 {
				t.Errorf("planGC collects %v, want collect=%v", got, tc.collect)
			}
		})
	}
}

// probeNetNS on real paths: only a path missing from a directory plexusd
// sees is gone.
func TestProbeNetNS(t *testing.T) {
	dir := t.TempDir()
	present := filepath.Join(dir, "cni-1")
	if err := os.WriteFile(present, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want netnsState
	}{
		{present, netnsPresent},
		{filepath.Join(dir, "cni-2"), netnsGone},
		{filepath.Join(dir, "unmounted", "cni-3"), netnsUnchecked},
		{filepath.Join(notDir, "cni-4"), netnsUnchecked}, // ENOTDIR: proves nothing
		{"/proc/2147483647/ns/net", netnsUnchecked},
		{"", netnsUnchecked},
	} {
		if got := probeNetNS(tc.path); got != tc.want {
			t.Errorf("probeNetNS(%s) = %v, want %v", strings.TrimPrefix(tc.path, dir), got, tc.want)
		}
	}
}
