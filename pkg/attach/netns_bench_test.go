package attach

import (
	"fmt"
	"testing"

	"github.com/plexus-cni/plexus/pkg/podnet"
)

// BenchmarkCheckInterfacesFree: the interface-name check of an ADD with
// 1+8 attachments, in this process's network namespace.
func BenchmarkCheckInterfacesFree(b *testing.B) {
	atts := []podnet.Attachment{{Network: "primary", IfName: "plexus-eth0"}}
	for i := 1; i <= 8; i++ {
		atts = append(atts, podnet.Attachment{Network: fmt.Sprintf("n%d", i), IfName: fmt.Sprintf("plexus-net%d", i)})
	}
	for b.Loop() {
		if err := checkInterfacesFree("/proc/self/ns/net", atts); err != nil {
			b.Fatal(err)
		}
	}
}
