package netpol

import (
	"net/netip"
	"slices"
)

// Range is an inclusive range of addresses of one family.
type Range struct {
	From, To netip.Addr
}

// String is the range as nft writes an interval element: "a" or "a-b".
func (r Range) String() string {
	if r.From == r.To {
		return r.From.String()
	}
	return r.From.String() + "-" + r.To.String()
}

// prefixRange is the range a prefix covers.
func prefixRange(p netip.Prefix) Range {
	p = p.Masked()
	from := p.Addr()
	to := from.As16()
	bits := from.BitLen()
	host := bits - p.Bits()
	off := 16 - bits/8 // As16 puts an IPv4 address in the last 4 bytes
	for i := 0; i < host; i++ {
		b := off + (bits-1-i)/8
		to[b] |= 1 << (i % 8)
	}
	last := netip.AddrFrom16(to)
	if from.Is4() {
		last = last.Unmap()
	}
	return Range{From: from, To: last}
}

// less orders ranges by their first address.
func compareRange(a, b Range) int { return a.From.Compare(b.From) }

// normalize sorts ranges and merges the overlapping and adjacent ones, so
// that nft (which refuses overlapping interval elements) takes them.
func normalize(rs []Range) []Range {
	if len(rs) == 0 {
		return nil
	}
	rs = slices.Clone(rs)
	slices.SortFunc(rs, compareRange)
	out := []Range{rs[0]}
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		next := last.To.Next()
		if r.From.Compare(last.To) <= 0 || (next.IsValid() && r.From == next) {
			if r.To.Compare(last.To) > 0 {
				last.To = r.To
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// subtract removes cut from every range of rs.
func subtract(rs []Range, cut Range) []Range {
	var out []Range
	for _, r := range rs {
		if cut.To.Compare(r.From) < 0 || cut.From.Compare(r.To) > 0 || r.From.Is4() != cut.From.Is4() {
			out = append(out, r)
			continue
		}
		if r.From.Compare(cut.From) < 0 {
			out = append(out, Range{From: r.From, To: cut.From.Prev()})
		}
		if r.To.Compare(cut.To) > 0 {
			out = append(out, Range{From: cut.To.Next(), To: r.To})
		}
	}
	return out
}

// AddrSet is a set of addresses, per family, as sorted disjoint ranges.
type AddrSet struct {
	V4, V6 []Range
}

// Empty reports whether the set holds no address.
func (s AddrSet) Empty() bool { return len(s.V4) == 0 && len(s.V6) == 0 }

// addrSet builds a normalized set from ranges of either family.
func addrSet(rs []Range) AddrSet {
	var s AddrSet
	for _, r := range rs {
		if r.From.Is4() {
			s.V4 = append(s.V4, r)
		} else {
			s.V6 = append(s.V6, r)
		}
	}
	s.V4, s.V6 = normalize(s.V4), normalize(s.V6)
	return s
}
