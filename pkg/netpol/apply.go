package netpol

import (
	"context"
	"fmt"
	"os/exec"
	"strings"

	"github.com/containernetworking/plugins/pkg/ns"
	"sigs.k8s.io/knftables"
)

// Apply writes plan's table in the network namespace at netnsPath, in one
// nft transaction (Render). knftables runs the nft command; it runs on
// the OS thread ns.Do has moved into the pod's netns, so the table is the
// pod's.
func Apply(ctx context.Context, netnsPath string, plan Plan) error {
	return ns.WithNetNSPath(netnsPath, func(ns.NetNS) error {
		nft, err := knftables.New(knftables.InetFamily, TableName)
		if err != nil {
			return fmt.Errorf("nftables in %s: %w", netnsPath, err)
		}
		tx := nft.NewTransaction()
		if err := Render(tx, plan); err != nil {
			return err
		}
		if err := nft.Run(ctx, tx); err != nil {
			return fmt.Errorf("nftables in %s: %w", netnsPath, err)
		}
		return nil
	})
}

// Dump is the pod's table as `nft list table inet plexus` prints it, ""
// when it has none (for plexusctl and tests). knftables lists objects,
// not the ruleset's text, so this runs the nft command itself.
func Dump(ctx context.Context, netnsPath string) (string, error) {
	var out []byte
	err := ns.WithNetNSPath(netnsPath, func(ns.NetNS) error {
		var err error
		out, err = exec.CommandContext(ctx, "nft", "list", "table", "inet", TableName).CombinedOutput()
		if err != nil && strings.Contains(string(out), "No such file or directory") {
			out, err = nil, nil
		}
		if err != nil {
			return fmt.Errorf("nft list table inet %s in %s: %w: %s", TableName, netnsPath, err, out)
		}
		return nil
	})
	return string(out), err
}
