package attach

import (
	"github.com/plexus-cni/plexus/pkg/delegate"
	"github.com/plexus-cni/plexus/pkg/podnet"

	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// A pod attached by Multus before the switch to plexus has no plexus cache
// entry, but Multus left its own: <multusCacheDir>/<containerID>, a JSON
// list of the delegates it ran (their config as run, device IDs injected,
// and the interface each got). DEL reads it so that deleting such a pod
// after the switch releases everything Multus attached, even when the pod
// is gone from the API. These are the public facts of Multus's cache file;
// the reader is plexus's own.

// multusDelegate is the part of a Multus cache entry plexus needs.
type multusDelegate struct {
	Name          string `json:"Name"`
	IfnameRequest string `json:"ifnameRequest,omitempty"`
	DeviceID      string `json:"deviceID,omitempty"`
	Bytes         []byte `json:"Bytes"` // the delegate config as run (base64 in JSON)
}

// multusEntry turns Multus's cache file of a container into a cache entry
// plexus can DEL; nil when there is none. Interface names follow Multus:
// the requested one, the runtime's for the first (the cluster network),
// else net<index>.
func (e *Attacher) multusEntry(req *podnet.Request) (*podnet.Entry, string, error) {
	if e.MultusCacheDir == "" || req.ContainerID == "" {
		return nil, "", nil
	}
	path := filepath.Join(e.MultusCacheDir, filepath.Base(req.ContainerID))
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, "", nil
	}
	if err != nil {
		return nil, path, err
	}
	var ds []multusDelegate
	if err := json.Unmarshal(b, &ds); err != nil {
		return nil, path, fmt.Errorf("Multus cache file %s: %v", path, err)
	}
	entry := &podnet.Entry{ContainerID: req.ContainerID, NetNS: req.NetNS, CNIVersion: e.CNIVersion,
		PodNamespace: req.Pod.Namespace, PodName: req.Pod.Name, PodUID: req.Pod.UID}
	for i, d := range ds {
		l, err := delegate.ConfList(d.Bytes, d.Name, e.CNIVersion)
		if err != nil {
			return nil, path, fmt.Errorf("Multus cache file %s: delegate %d (%s): %v", path, i, d.Name, err)
		}
		ifName := d.IfnameRequest
		switch {
		case ifName != "":
		case i == 0:
			ifName = req.IfName
		default:
			ifName = "net" + strconv.Itoa(i)
		}
		entry.Attachments = append(entry.Attachments, podnet.Attachment{
			Network: d.Name, IfName: ifName, Primary: i == 0, ConfList: l.Bytes,
			CNIArgs: delegate.Args(req.Args), DeviceID: d.DeviceID, Added: true,
		})
	}
	return entry, path, nil
}
