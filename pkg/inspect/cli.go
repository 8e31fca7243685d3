package inspect

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// Exit codes of Main.
const (
	ExitOK    = 0
	ExitError = 1 // something could not be read, or a GC DEL failed
	ExitUsage = 2
)

const usage = `plexusctl: inspect the state plexus keeps on this node.

Usage: plexusctl [command] [flags]

Commands:
  containers   every container plexus attached (the default), and those
               Multus attached before the switch
  vfs          which container/pod holds which VF
  stale        cache entries whose netns is gone, incomplete entries, leak
               records
  gc           run the delegates' DEL for every entry whose netns is gone,
               as the runtime would, and remove it (--dry-run: list only)
  policy NS/POD
               the MultiNetworkPolicy table plexusd wrote in the pod's
               netns: each filtered interface's chain is commented with
               its NAD and the policies selecting it

Flags:
`

// Main runs plexusctl with args (without the program name) and returns its
// exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	return MainContext(context.Background(), args, stdout, stderr, nil)
}

// MainContext is Main with a context and a Node whose paths the flags
// default to (DefaultPaths when nil).
func MainContext(ctx context.Context, args []string, stdout, stderr io.Writer, node *Node) int {
	if node == nil {
		node = &Node{Paths: DefaultPaths()}
	}
	fs := flag.NewFlagSet("plexusctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	fs.StringVar(&node.CNIDir, "cni-dir", node.CNIDir, "plexus's cniDir (cache, locks, leak records)")
	fs.StringVar(&node.SriovStateDir, "sriov-state-dir", node.SriovStateDir, "the sriov plugin's dataDir (its VF state; sriov-cni's too)")
	fs.StringVar(&node.MultusCacheDir, "multus-cache-dir", node.MultusCacheDir, "Multus's cache directory (\"\" for none)")
	fs.StringVar(&node.DeviceInfoDir, "device-info-dir", node.DeviceInfoDir, "base directory of the device-info files")
	fs.StringVar(&node.BinDir, "bin-dir", node.BinDir, "directory of the delegate plugins (gc)")
	output := fs.String("o", "table", "output format: table or json")
	dryRun := fs.Bool("dry-run", false, "gc: list what would be deleted, change nothing")

	// The command may come before or after the flags.
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	cmd, pod := "containers", ""
	if rest := fs.Args(); len(rest) > 0 {
		cmd = rest[0]
		if cmd == "policy" {
			if len(rest) < 2 || strings.HasPrefix(rest[1], "-") {
				fmt.Fprintln(stderr, "plexusctl: policy needs a pod: plexusctl policy NAMESPACE/NAME")
				return ExitUsage
			}
			pod, rest = rest[1], rest[1:]
		}
		if err := fs.Parse(rest[1:]); err != nil {
			return parseExit(err)
		}
		if len(fs.Args()) > 0 {
			fmt.Fprintf(stderr, "plexusctl: unexpected argument %q\n", fs.Args()[0])
			return ExitUsage
		}
	}
	if *output != "table" && *output != "json" {
		fmt.Fprintf(stderr, "plexusctl: -o %q: want table or json\n", *output)
		return ExitUsage
	}
	if *dryRun && cmd != "gc" {
		fmt.Fprintf(stderr, "plexusctl: --dry-run is a flag of gc, not of %s\n", cmd)
		return ExitUsage
	}
	asJSON := *output == "json"
	var err error
	switch cmd {
	case "containers":
		err = runContainers(node, stdout, stderr, asJSON)
	case "vfs":
		err = runVFs(node, stdout, asJSON)
	case "stale":
		err = runStale(node, stdout, asJSON)
	case "gc":
		err = runGC(ctx, node, stdout, asJSON, *dryRun)
	case "policy":
		err = runPolicy(ctx, node, pod, stdout, asJSON)
	default:
		fmt.Fprintf(stderr, "plexusctl: unknown command %q (containers, vfs, stale, gc, policy)\n", cmd)
		return ExitUsage
	}
	if err != nil {
		fmt.Fprintf(stderr, "plexusctl %s: %v\n", cmd, err)
		return ExitError
	}
	return ExitOK
}

func parseExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	return ExitUsage
}

func runContainers(n *Node, stdout, stderr io.Writer, asJSON bool) error {
	cs, err := n.Containers()
	if err != nil {
		return err
	}
	for _, c := range cs {
		if c.Error != "" {
			fmt.Fprintf(stderr, "plexusctl: container %s: %s\n", c.ContainerID, c.Error)
		}
	}
	if asJSON {
		return writeJSON(stdout, containersDoc{Containers: cs})
	}
	return WriteContainersTable(stdout, cs)
}

func runVFs(n *Node, stdout io.Writer, asJSON bool) error {
	vfs, err := n.VFs()
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(stdout, vfsDoc{VFs: vfs})
	}
	return WriteVFsTable(stdout, vfs)
}

func runStale(n *Node, stdout io.Writer, asJSON bool) error {
	ss, err := n.Stale()
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(stdout, staleDoc{Stale: ss})
	}
	return WriteStaleTable(stdout, ss)
}

// runGC prints a line per container as it is handled (table output), or
// the whole list at the end (JSON).
func runGC(ctx context.Context, n *Node, stdout io.Writer, asJSON, dryRun bool) error {
	var each func(GCResult)
	if !asJSON {
		each = func(r GCResult) { fmt.Fprintln(stdout, GCLine(r)) }
	}
	rs, err := n.GC(ctx, dryRun, each)
	if asJSON {
		if jerr := writeJSON(stdout, gcDoc{GC: rs}); jerr != nil {
			return jerr
		}
	} else if len(rs) == 0 && err == nil {
		fmt.Fprintln(stdout, "nothing to collect")
	}
	if err != nil && rs != nil {
		var failed []string
		for _, r := range rs {
			if r.Outcome == OutcomeFailed {
				failed = append(failed, r.ContainerID)
			}
		}
		return fmt.Errorf("DEL failed for %d container(s): %s", len(failed), strings.Join(failed, ", "))
	}
	return err
}
