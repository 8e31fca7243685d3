package cluster

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"
)

// LocalDir is where `make cluster-up` keeps the cluster's state.
func LocalDir() string { return filepath.Join(RepoRoot(), "bin", "cluster") }

// localBridgeConflist is the node's primary network until plexus's installer
// writes 00-plexus.conflist beside it (containerd loads the first by name).
const localBridgeConflist = `{
  "cniVersion": "1.0.0",
  "name": "cluster-bridge",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "plxcluster0",
      "isGateway": true,
      "ipMasq": false,
      "ipam": {
        "type": "host-local",
        "dataDir": "/run/plexus-localcluster-ipam",
        "ranges": [[{"subnet": "198.18.200.0/24"}]]
      }
    }
  ]
}
`

// LocalUp starts a control plane and a node that outlive this process, with
// state under bin/cluster/, and writes bin/cluster/admin.kubeconfig and
// bin/cluster/plexus.kubeconfig (plexus's ServiceAccount, when
// deployments/plexus.yaml defines it). The node's CNI directories are
// bin/cluster/cni/net.d (conf; a bridge conflist 99-bridge.conflist is put
// there) and bin/cni (plugins).
func LocalUp(w io.Writer) error {
	dir := LocalDir()
	if _, err := os.Stat(filepath.Join(dir, "cp", stateFile)); err == nil {
		return fmt.Errorf("a cluster is already up in %s: run `make cluster-down` first", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	start := time.Now()
	cp, err := StartControlPlane(Options{Dir: filepath.Join(dir, "cp"), Detached: true})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "control plane up in %v: %s\n", time.Since(start).Round(time.Millisecond), cp.Server)
	confDir := filepath.Join(dir, "cni", "net.d")
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		return errors.Join(err, cp.Stop())
	}
	if err := os.WriteFile(filepath.Join(confDir, "99-bridge.conflist"), []byte(localBridgeConflist), 0o644); err != nil {
		return errors.Join(err, cp.Stop())
	}
	nstart := time.Now()
	n, err := StartNode(cp, NodeOptions{
		CNIBinDir: filepath.Join(RepoRoot(), "bin", "cni"), CNIConfDir: confDir,
		Dir: filepath.Join(dir, "node"), Detached: true,
	})
	if err != nil {
		return errors.Join(err, cp.Stop())
	}
	n.Detach() // the node outlives us; its state file guards it
	fmt.Fprintf(w, "node %s Ready in %v (IP %s, CNI conf dir %s)\n", n.Name, time.Since(nstart).Round(time.Millisecond), n.IP, confDir)
	admin := filepath.Join(dir, "admin.kubeconfig")
	b, err := os.ReadFile(cp.AdminKubeconfig)
	if err == nil {
		err = os.WriteFile(admin, b, 0o600)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "admin kubeconfig: %s\n", admin)
	if _, err := os.Stat(PlexusManifest()); err == nil {
		p, err := cp.ServiceAccountKubeconfig("kube-system", "plexus")
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, "plexus.kubeconfig"), b, 0o600)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "plexus kubeconfig: %s\n", filepath.Join(dir, "plexus.kubeconfig"))
	} else {
		fmt.Fprintf(w, "no %s yet: no plexus kubeconfig\n", PlexusManifest())
	}
	fmt.Fprintf(w, "pods: nodeName %s, imagePullPolicy Never, images %s / %s, automountServiceAccountToken false\n", n.Name, BusyboxImage, PauseImage)
	return nil
}

// LocalDown stops the cluster LocalUp started and removes its state.
func LocalDown(w io.Writer) error {
	dir := LocalDir()
	var errs []error
	cp, cpErr := AttachControlPlane(filepath.Join(dir, "cp"))
	if cpErr != nil {
		cp = nil
	}
	if _, err := os.Stat(nodeStateFile); err == nil {
		n, err := AttachNode(cp)
		if err != nil {
			errs = append(errs, err)
		} else if err := n.Stop(); err != nil {
			errs = append(errs, err)
		} else {
			fmt.Fprintf(w, "node %s stopped\n", n.Name)
		}
	}
	if cp != nil {
		if err := cp.Stop(); err != nil {
			errs = append(errs, err)
		} else {
			fmt.Fprintln(w, "control plane stopped")
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, err)
	}
	if l, err := netlinksafe.LinkByName("plxcluster0"); err == nil {
		if err := netlink.LinkDel(l); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll("/run/plexus-localcluster-ipam"); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
