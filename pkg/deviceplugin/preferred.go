package deviceplugin

import (
	"fmt"
	"sort"

	"github.com/plexus-cni/plexus/pkg/sriov/dpconfig"
)

// Prefer chooses size devices out of available for one container: the
// mustInclude ones first, then devices on one NUMA node when one node can
// hold them all (the node of the must-include devices first), then by PF:
// "packed" fills the PF that fits best before using another, "spread"
// takes from each PF in turn. It never returns more than size devices nor
// one outside available.
func Prefer(devs map[string]*dpconfig.Device, policy string, available, mustInclude []string, size int) ([]string, error) {
	if size <= 0 {
		return nil, fmt.Errorf("allocation size %d: must be positive", size)
	}
	avail := make(map[string]bool, len(available))
	for _, id := range available {
		avail[id] = true
	}
	var out []string
	taken := map[string]bool{}
	for _, id := range mustInclude {
		if !avail[id] {
			return nil, fmt.Errorf("must-include device %s is not among the available devices", id)
		}
		if !taken[id] {
			taken[id] = true
			out = append(out, id)
		}
	}
	if len(out) >= size {
		return out[:size], nil
	}
	var cands []string
	for id := range avail {
		if !taken[id] {
			cands = append(cands, id)
		}
	}
	if len(out)+len(cands) < size {
		return nil, fmt.Errorf("allocation size %d: only %d devices available", size, len(out)+len(cands))
	}
	sort.Strings(cands)
	need := size - len(out)
	for _, node := range orderGroups(groupBy(cands, func(id string) string { return fmt.Sprint(numaOf(devs, id)) }),
		groupSet(out, func(id string) string { return fmt.Sprint(numaOf(devs, id)) }), need, policy,
		func(ids []string) int { return pfFit(devs, ids, need) }) {
		picked := pickByPF(devs, node, out, need, policy)
		out = append(out, picked...)
		need -= len(picked)
		if need == 0 {
			break
		}
	}
	return out, nil
}

type group struct {
	key string
	ids []string
}

func numaOf(devs map[string]*dpconfig.Device, id string) int {
	if d := devs[id]; d != nil {
		return d.NUMA
	}
	return -1
}

func pfOf(devs map[string]*dpconfig.Device, id string) string {
	if d := devs[id]; d != nil {
		return d.PFAddr
	}
	return ""
}

func groupBy(ids []string, key func(string) string) []group {
	idx := map[string]int{}
	var gs []group
	for _, id := range ids {
		k := key(id)
		i, ok := idx[k]
		if !ok {
			i = len(gs)
			idx[k] = i
			gs = append(gs, group{key: k})
		}
		gs[i].ids = append(gs[i].ids, id)
	}
	return gs
}

func groupSet(ids []string, key func(string) string) map[string]bool {
	m := map[string]bool{}
	for _, id := range ids {
		m[key(id)] = true
	}
	return m
}

// orderGroups orders groups for taking need devices: groups already in use
// that can hold all of need first, then groups that can (the best fit for
// "packed", the largest for "spread"), then the rest largest first. Among
// equals, the lower tie value (when tie is not nil) comes first.
func orderGroups(gs []group, used map[string]bool, need int, policy string, tie func([]string) int) [][]string {
	rank := func(g group) int {
		switch {
		case used[g.key] && len(g.ids) >= need:
			return 0
		case len(g.ids) >= need:
			return 1
		case used[g.key]:
			return 2
		}
		return 3
	}
	sort.SliceStable(gs, func(i, j int) bool {
		ri, rj := rank(gs[i]), rank(gs[j])
		if ri != rj {
			return ri < rj
		}
		li, lj := len(gs[i].ids), len(gs[j].ids)
		if ri <= 1 && policy == dpconfig.PolicyPacked && li != lj {
			return li < lj // best fit keeps big groups whole
		}
		if li != lj {
			return li > lj
		}
		if tie != nil {
			if si, sj := tie(gs[i].ids), tie(gs[j].ids); si != sj {
				return si < sj
			}
		}
		return gs[i].key < gs[j].key
	})
	out := make([][]string, len(gs))
	for i, g := range gs {
		out[i] = g.ids
	}
	return out
}

// pfFit is the size of the smallest PF group in ids that holds need
// devices alone, or a large number when none does.
func pfFit(devs map[string]*dpconfig.Device, ids []string, need int) int {
	best := int(^uint(0) >> 1)
	for _, g := range groupBy(ids, func(id string) string { return pfOf(devs, id) }) {
		if len(g.ids) >= need && len(g.ids) < best {
			best = len(g.ids)
		}
	}
	return best
}

// pickByPF takes up to need of ids (sorted) by the PF policy.
func pickByPF(devs map[string]*dpconfig.Device, ids, already []string, need int, policy string) []string {
	pfs := groupBy(ids, func(id string) string { return pfOf(devs, id) })
	used := groupSet(already, func(id string) string { return pfOf(devs, id) })
	if policy == dpconfig.PolicySpread {
		sort.SliceStable(pfs, func(i, j int) bool {
			if used[pfs[i].key] != used[pfs[j].key] {
				return !used[pfs[i].key] // spread: new PFs first
			}
			if len(pfs[i].ids) != len(pfs[j].ids) {
				return len(pfs[i].ids) > len(pfs[j].ids)
			}
			return pfs[i].key < pfs[j].key
		})
		var out []string
		for round := 0; len(out) < need; round++ {
			progress := false
			for _, g := range pfs {
				if round < len(g.ids) && len(out) < need {
					out = append(out, g.ids[round])
					progress = true
				}
			}
			if !progress {
				break
			}
		}
		return out
	}
	var out []string
	for _, g := range orderGroups(pfs, used, need, policy, nil) {
		for _, id := range g {
			if len(out) == need {
				return out
			}
			out = append(out, id)
		}
	}
	return out
}
