package cni

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// netdevInfo is what we save of a VF netdev before moving it.
type netdevInfo struct {
	Name string
	MAC  string
	MTU  int
	Up   bool
}

func readNetdev(name string) (netdevInfo, error) {
	l, err := netlinksafe.LinkByName(name)
	if err != nil {
		return netdevInfo{}, fmt.Errorf("VF netdev %s: %w", name, err)
	}
	a := l.Attrs()
	return netdevInfo{Name: a.Name, MAC: a.HardwareAddr.String(), MTU: a.MTU, Up: a.Flags&net.FlagUp != 0}, nil
}

// tempName is a random interface name ("sv" + 12 hex digits, 14 chars) used
// while the netdev travels between namespaces.
func tempName() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "sv" + hex.EncodeToString(b[:])
}

// renameToTemp takes the link down and gives it a fresh temporary name,
// retrying on the (unlikely) collision.
func renameToTemp(l netlink.Link) (string, error) {
	if err := netlink.LinkSetDown(l); err != nil {
		return "", fmt.Errorf("set %s down: %w", l.Attrs().Name, err)
	}
	for i := 0; ; i++ {
		tmp := tempName()
		err := netlink.LinkSetName(l, tmp)
		if err == nil {
			return tmp, nil
		}
		if !errors.Is(err, unix.EEXIST) || i == 4 {
			return "", fmt.Errorf("rename %s to temporary %s: %w", l.Attrs().Name, tmp, err)
		}
	}
}

// moveToNS renames the host netdev name to a temporary name and moves it
// into target; it returns the temporary name. On error the netdev is left in
// the host under its original name.
func moveToNS(name string, target ns.NetNS) (string, error) {
	l, err := netlinksafe.LinkByName(name)
	if err != nil {
		return "", fmt.Errorf("VF netdev %s: %w", name, err)
	}
	tmp, err := renameToTemp(l)
	if err != nil {
		return "", err
	}
	if err := netlink.LinkSetNsFd(l, int(target.Fd())); err != nil {
		_ = netlink.LinkSetName(l, name)
		return "", fmt.Errorf("move %s into netns %s: %w", name, target.Path(), err)
	}
	return tmp, nil
}

// setupInNS renames tmp to ifName inside the current netns, sets the MAC
// and the MTU (when given) and brings the link up; it returns the netdev's
// name, effective MAC and MTU.
func setupInNS(tmp, ifName string, mac net.HardwareAddr, mtu int, step func(string) error) (netdevInfo, error) {
	l, err := netlinksafe.LinkByName(tmp)
	if err != nil {
		return netdevInfo{}, fmt.Errorf("VF netdev %s in pod: %w", tmp, err)
	}
	if err := step("rename"); err != nil {
		return netdevInfo{}, err
	}
	if err := netlink.LinkSetName(l, ifName); err != nil {
		return netdevInfo{}, fmt.Errorf("rename VF netdev to %s in pod: %w", ifName, err)
	}
	if mac != nil {
		if err := step("set-mac"); err != nil {
			return netdevInfo{}, err
		}
		if err := netlink.LinkSetHardwareAddr(l, mac); err != nil {
			return netdevInfo{}, fmt.Errorf("set MAC %s on %s: %w", mac, ifName, err)
		}
	}
	if mtu != 0 {
		if err := netlink.LinkSetMTU(l, mtu); err != nil {
			return netdevInfo{}, fmt.Errorf("key \"mtu\": set MTU %d on %s: %w", mtu, ifName, err)
		}
	}
	if err := step("link-up"); err != nil {
		return netdevInfo{}, err
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return netdevInfo{}, fmt.Errorf("set %s up: %w", ifName, err)
	}
	return readNetdev(ifName)
}

// moveOutOfNS takes the pod-side netdev (found by find, inside the pod)
// down, gives it a temporary name, and moves it to host; it returns the
// temporary name.
func moveOutOfNS(pod, host ns.NetNS, find func() (netlink.Link, error)) (string, error) {
	var tmp string
	err := pod.Do(func(ns.NetNS) error {
		l, err := find()
		if err != nil {
			return fmt.Errorf("VF netdev in pod: %w", err)
		}
		name := l.Attrs().Name
		if tmp, err = renameToTemp(l); err != nil {
			return err
		}
		if err := netlink.LinkSetNsFd(l, int(host.Fd())); err != nil {
			_ = netlink.LinkSetName(l, name)
			return fmt.Errorf("move %s out of netns %s: %w", name, pod.Path(), err)
		}
		return nil
	})
	return tmp, err
}

// restoreHostNetdev gives a host netdev (currently named cur) its saved
// name, MAC, MTU and admin state.
func restoreHostNetdev(cur string, orig netdevInfo) error {
	l, err := netlinksafe.LinkByName(cur)
	if err != nil {
		return fmt.Errorf("VF netdev %s: %w", cur, err)
	}
	var errs []error
	if cur != orig.Name {
		if err := netlink.LinkSetDown(l); err != nil {
			errs = append(errs, fmt.Errorf("set %s down: %w", cur, err))
		}
		if err := netlink.LinkSetName(l, orig.Name); err != nil {
			return fmt.Errorf("rename %s back to %s: %w", cur, orig.Name, err)
		}
	}
	if orig.MAC != "" && l.Attrs().HardwareAddr.String() != orig.MAC {
		if mac, err := net.ParseMAC(orig.MAC); err == nil {
			if err := netlink.LinkSetHardwareAddr(l, mac); err != nil {
				errs = append(errs, fmt.Errorf("restore MAC %s on %s: %w", orig.MAC, orig.Name, err))
			}
		}
	}
	if orig.MTU > 0 && l.Attrs().MTU != orig.MTU {
		if err := netlink.LinkSetMTU(l, orig.MTU); err != nil {
			errs = append(errs, fmt.Errorf("restore MTU %d on %s: %w", orig.MTU, orig.Name, err))
		}
	}
	if orig.Up {
		if err := netlink.LinkSetUp(l); err != nil {
			errs = append(errs, fmt.Errorf("set %s up: %w", orig.Name, err))
		}
	}
	return errors.Join(errs...)
}
