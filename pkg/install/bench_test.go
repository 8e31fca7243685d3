package install

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkPollIdle is one steady-state poll when nothing changed: what
// plexus-install costs the node every --poll-interval.
func BenchmarkPollIdle(b *testing.B) {
	h := newHost(b)
	h.write(filepath.Join(h.conf, "10-kindnet.conflist"), bridgePrimary)
	cfg := h.config()
	cfg.WaitTimeout = time.Second
	in := New(cfg, discard)
	if err := in.syncKubeconfig(); err != nil {
		b.Fatal(err)
	}
	if err := in.syncConf(true); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := in.syncKubeconfig(); err != nil {
			b.Fatal(err)
		}
		if err := in.syncConf(false); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInstallBinary is one atomic install of a 20 MiB binary (about
// plexus's size), fsync included.
func BenchmarkInstallBinary(b *testing.B) {
	src, dst := b.TempDir(), b.TempDir()
	data := make([]byte, 20<<20)
	for i := range data {
		data[i] = byte(i)
	}
	if err := os.WriteFile(filepath.Join(src, "plexus"), data, 0o755); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		os.Remove(filepath.Join(dst, "plexus")) // force a copy
		if _, _, err := InstallBinaries(discard, src, dst, []string{"plexus"}, false); err != nil {
			b.Fatal(err)
		}
	}
}
