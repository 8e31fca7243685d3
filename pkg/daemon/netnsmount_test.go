package daemon

import (
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
)

// Entries as /proc/self/mountinfo of plexusd's container shows them, parsed
// by the same library as at run time.
func TestNetnsMountCheck(t *testing.T) {
	const (
		slave   = "1561 1540 0:25 /netns /run/netns ro,nosuid,nodev,noexec,relatime master:4 - tmpfs tmpfs rw,size=1631504k,mode=755"
		peer    = "1561 1540 0:25 /netns /run/netns rw,nosuid,nodev shared:4 - tmpfs tmpfs rw,mode=755"
		private = "1561 1540 0:25 /netns /run/netns ro,nosuid,nodev,noexec,relatime - tmpfs tmpfs rw,size=1631504k,mode=755"
		both    = "1561 1540 0:25 /netns /run/netns rw shared:7 master:4 - tmpfs tmpfs rw"
		root    = "1540 1539 0:88 / / rw,relatime - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w"
		under   = "1562 1561 0:4 net:[4026532711] /run/netns/cni-1 rw master:5 - nsfs nsfs rw"
		other   = "1563 1540 0:25 /plexus /run/plexus rw,nosuid,nodev master:4 - tmpfs tmpfs rw"
	)
	for _, c := range []struct {
		name  string
		lines []string
		want  string // "" when plexusd sees the host's namespaces
	}{
		{"HostToContainer", []string{root, slave, under}, ""},
		{"Bidirectional", []string{root, peer}, ""},
		{"shared and slave", []string{root, both}, ""},
		{"private", []string{root, private, other}, "/var/run/netns is not a shared mount on the host: plexusd's mount of it is private"},
		{"private over a slave", []string{root, slave, private}, "is not a shared mount on the host"},
		{"not a mount point (plexusd on the host)", []string{root, other, under}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			mounts, err := mountinfo.GetMountsFromReader(strings.NewReader(strings.Join(c.lines, "\n")+"\n"), nil)
			if err != nil {
				t.Fatal(err)
			}
			err = netnsMountCheck(mounts, "/var/run/netns", "/run/netns")
			if c.want == "" {
				if err != nil {
					t.Fatalf("want nil, got %v", err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), "/var/run/netns is not a shared mount on the host: ") || !strings.Contains(err.Error(), c.want) ||
				!strings.Contains(err.Error(), "mount --make-shared /run/netns") {
				t.Fatalf("got %v, want %q", err, c.want)
			}
		})
	}
}
