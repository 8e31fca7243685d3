package fakesysfs

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// AddPlainDevice writes a PCI device that is not an SR-IOV PF: class is the
// 24-bit class code in hex ("020000" for Ethernet, "010802" for NVMe).
func (t *Tree) AddPlainDevice(addr, vendor, device, class, driver string, numa int) error {
	if err := t.addDevice(addr, vendor, device, driver, numa); err != nil {
		return err
	}
	if len(class) != 6 {
		return fmt.Errorf("fakesysfs: class %q: want 6 hex digits", class)
	}
	modalias := fmt.Sprintf("pci:v0000%sd0000%ssv0000%ssd00000000bc%ssc%si%s",
		strings.ToUpper(vendor), strings.ToUpper(device), strings.ToUpper(vendor),
		strings.ToUpper(class[0:2]), strings.ToUpper(class[2:4]), strings.ToUpper(class[4:6]))
	return writeFiles(t.devDir(addr), map[string]string{"class": "0x" + class, "modalias": modalias})
}

// AddRDMA gives the device at addr an RDMA device (infiniband/<name>) with
// the user verbs char device uverbs<n>.
func (t *Tree) AddRDMA(addr, name string, n int) error {
	dir := t.devDir(addr)
	if err := os.MkdirAll(filepath.Join(dir, "infiniband", name), 0o755); err != nil {
		return err
	}
	return os.MkdirAll(filepath.Join(dir, "infiniband_verbs", fmt.Sprintf("uverbs%d", n)), 0o755)
}

// WritePCIDB writes a pci.ids database at usr/share/misc/pci.ids under the
// root with the given content (see the pci.ids format).
func (t *Tree) WritePCIDB(content string) (string, error) {
	p := filepath.Join(t.Root, "usr/share/misc/pci.ids")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", err
	}
	return p, os.WriteFile(p, []byte(content), 0o644)
}
