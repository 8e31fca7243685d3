package netpol

import (
	"net/netip"
	"testing"
)

func TestPrefixRange(t *testing.T) {
	for in, want := range map[string]string{
		"10.1.2.3/8":      "10.0.0.0-10.255.255.255",
		"10.1.2.3/32":     "10.1.2.3",
		"0.0.0.0/0":       "0.0.0.0-255.255.255.255",
		"192.168.1.64/27": "192.168.1.64-192.168.1.95",
		"fd00::/64":       "fd00::-fd00::ffff:ffff:ffff:ffff",
		"fd00::1/128":     "fd00::1",
		"fd00:1::/33":     "fd00:1::-fd00:1:7fff:ffff:ffff:ffff:ffff:ffff",
	} {
		if got := prefixRange(netip.MustParsePrefix(in)).String(); got != want {
			t.Errorf("prefixRange(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestSetArithmetic(t *testing.T) {
	r := func(s string) Range { return prefixRange(netip.MustParsePrefix(s)) }
	// 10.0.0.0/24 minus its first, last and a middle address, and an
	// IPv6 cut (other family: no effect).
	rs := []Range{r("10.0.0.0/24")}
	for _, cut := range []string{"10.0.0.0/32", "10.0.0.255/32", "10.0.0.128/30", "::/0"} {
		rs = subtract(rs, r(cut))
	}
	got := addrSet(rs)
	want := set("10.0.0.1-10.0.0.127", "10.0.0.132-10.0.0.254")
	if len(got.V4) != 2 || got.V4[0] != want.V4[0] || got.V4[1] != want.V4[1] || len(got.V6) != 0 {
		t.Errorf("subtract: %v, want %v", got, want)
	}
	// Overlapping and adjacent ranges merge (nft refuses overlaps).
	n := addrSet([]Range{r("10.0.0.4/30"), r("10.0.0.0/30"), r("10.0.0.2/32"), r("10.0.0.9/32"), r("fd00::1/128"), r("fd00::2/128")})
	if len(n.V4) != 2 || n.V4[0].String() != "10.0.0.0-10.0.0.7" || n.V4[1].String() != "10.0.0.9" ||
		len(n.V6) != 1 || n.V6[0].String() != "fd00::1-fd00::2" {
		t.Errorf("normalize: %v", n)
	}
	// The last address of a family merges without overflow.
	if m := addrSet([]Range{r("255.255.255.255/32"), r("255.255.255.254/32")}); len(m.V4) != 1 {
		t.Errorf("top of range: %v", m)
	}
}
