package deviceplugin

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// LinkEvent is a PF netdev's link state.
type LinkEvent struct {
	Name string
	Up   bool
}

// LinkMonitor reports link states: first every existing link's, then each
// change, until ctx ends. It is the narrow PF-netlink interface the plugin
// depends on.
type LinkMonitor interface {
	Watch(ctx context.Context, out chan<- LinkEvent) error
}

// NetlinkMonitor watches links through rtnetlink in the network namespace
// at NetNS (a path like /var/run/netns/x), or in the caller's (the host's)
// when NetNS is empty.
type NetlinkMonitor struct {
	NetNS string
}

// Watch subscribes to link updates and resubscribes when the subscription
// breaks.
func (n NetlinkMonitor) Watch(ctx context.Context, out chan<- LinkEvent) error {
	for {
		err := n.watchOnce(ctx, out)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && n.NetNS != "" {
			if _, serr := netns.GetFromPath(n.NetNS); serr != nil {
				return err // the namespace is gone
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

func (n NetlinkMonitor) watchOnce(ctx context.Context, out chan<- LinkEvent) error {
	updates := make(chan netlink.LinkUpdate, 128)
	done := make(chan struct{})
	defer close(done)
	failed := make(chan error, 1)
	opts := netlink.LinkSubscribeOptions{
		ListExisting: true,
		ErrorCallback: func(err error) {
			select {
			case failed <- err:
			default:
			}
		},
	}
	if n.NetNS != "" {
		h, err := netns.GetFromPath(n.NetNS)
		if err != nil {
			return fmt.Errorf("link monitor: netns %s: %w", n.NetNS, err)
		}
		defer h.Close()
		opts.Namespace = &h
	}
	if err := netlink.LinkSubscribeWithOptions(updates, done, opts); err != nil {
		return fmt.Errorf("link monitor: subscribe: %w", err)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-failed:
			return fmt.Errorf("link monitor: %w", err)
		case u, ok := <-updates:
			if !ok {
				return fmt.Errorf("link monitor: subscription closed")
			}
			ev, ok := linkEvent(u)
			if !ok {
				continue
			}
			select {
			case out <- ev:
			case <-ctx.Done():
				return nil
			}
		}
	}
}

func linkEvent(u netlink.LinkUpdate) (LinkEvent, bool) {
	if u.Link == nil || u.Link.Attrs() == nil {
		return LinkEvent{}, false
	}
	a := u.Link.Attrs()
	if u.Header.Type == unix.RTM_DELLINK {
		return LinkEvent{Name: a.Name, Up: false}, true
	}
	return LinkEvent{Name: a.Name, Up: linkUp(a)}, true
}

// linkUp: operationally up, or administratively up with carrier where the
// driver reports no operstate.
func linkUp(a *netlink.LinkAttrs) bool {
	switch a.OperState {
	case netlink.OperUp:
		return true
	case netlink.OperUnknown:
		return a.Flags&net.FlagUp != 0 && a.RawFlags&unix.IFF_LOWER_UP != 0
	}
	return false
}

// operStateUp reads a sysfs operstate the same way.
func operStateUp(s string) bool {
	switch s {
	case "down", "lowerlayerdown", "notpresent", "dormant", "testing":
		return false
	}
	return true
}
