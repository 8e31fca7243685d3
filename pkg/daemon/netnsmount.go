package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/sys/mountinfo"
)

// DefaultNetnsDir is where the runtime (containerd, CRI-O) pins pods'
// network namespaces; the DaemonSet mounts the host's with
// mountPropagation HostToContainer.
const DefaultNetnsDir = "/var/run/netns"

// checkNetnsMount reads this process's mount table and says whether the
// netns directory dir receives the host's new mounts (netnsMountCheck).
func checkNetnsMount(dir string) error {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil // nothing mounted there: GC and hot-plug find no namespace either way
		}
		return fmt.Errorf("netns directory %s: %w", dir, err)
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("netns directory %s: %w", dir, err)
	}
	defer f.Close()
	mounts, err := mountinfo.GetMountsFromReader(f, func(m *mountinfo.Info) (skip, stop bool) {
		return m.Mountpoint != real, false // every entry: the last is on top
	})
	if err != nil {
		return fmt.Errorf("netns directory %s: reading /proc/self/mountinfo: %w", dir, err)
	}
	return netnsMountCheck(mounts, dir, real)
}

// netnsMountCheck decides from the mount table entries at real (dir with
// symlinks resolved) whether the runtime's network namespaces, each a
// mount the runtime makes on the host after plexusd started, reach
// plexusd: only when plexusd's mount of the directory is a slave
// ("master:", mountPropagation HostToContainer) or a peer ("shared:",
// Bidirectional) of the host's. A private mount is a copy frozen at
// container start: GC would take every newer sandbox for gone and hot-plug
// would find no pod's namespace. With no mount at real, plexusd runs in
// the host's mount namespace (not in a container) and sees the directory
// itself.
func netnsMountCheck(mounts []*mountinfo.Info, dir, real string) error {
	var top *mountinfo.Info
	for _, m := range mounts {
		if m.Mountpoint == real {
			top = m // the last entry is the one on top
		}
	}
	if top == nil {
		return nil
	}
	for _, opt := range strings.Fields(top.Optional) {
		if strings.HasPrefix(opt, "master:") || strings.HasPrefix(opt, "shared:") {
			return nil
		}
	}
	return fmt.Errorf("%s is not a shared mount on the host: plexusd's mount of it is private (no shared: or master: tag in /proc/self/mountinfo), "+
		"so it does not see network namespaces created after it started; on the host run `mount --make-shared /run/netns` "+
		"(after `mount --bind /run/netns /run/netns` if it is not a mount point), keep mountPropagation: HostToContainer, "+
		"and restart plexusd (docs/quickstart.md)", dir)
}
