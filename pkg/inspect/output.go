package inspect

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/util/duration"
)

// JSON documents: one object per command, its list under one key, so that
// fields can be added without breaking scripts (docs/plexusctl.md).
type (
	containersDoc struct {
		Containers []Container `json:"containers"`
	}
	vfsDoc struct {
		VFs []VF `json:"vfs"`
	}
	staleDoc struct {
		Stale []Stale `json:"stale"`
	}
	gcDoc struct {
		GC []GCResult `json:"gc"`
	}
)

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

func row(tw io.Writer, cols ...string) {
	for i, c := range cols {
		if c == "" {
			cols[i] = "-"
		}
	}
	fmt.Fprintln(tw, strings.Join(cols, "\t"))
}

// WriteContainersTable prints one row per attachment; the container's
// columns only on its first.
func WriteContainersTable(w io.Writer, cs []Container) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "CONTAINER\tPOD\tNETNS\tAGE\tSTATE\tNETWORK\tINTERFACE\tIPS\tMAC\tDEVICE")
	for _, c := range cs {
		first := []string{shortID(c.ContainerID), c.Pod.String(), c.NetNS, duration.HumanDuration(time.Duration(c.AgeSeconds) * time.Second), state(&c)}
		if c.Error != "" || len(c.Attachments) == 0 {
			row(tw, append(first, "", "", "", "", "")...)
			continue
		}
		for i, a := range c.Attachments {
			if i > 0 {
				first = []string{" ", " ", " ", " ", " "}
			}
			row(tw, append(first, a.Network, a.Interface, strings.Join(a.IPs, ","), a.MAC, a.DeviceID)...)
		}
	}
	return tw.Flush()
}

func state(c *Container) string {
	switch {
	case c.Error != "":
		return "unreadable"
	case c.Source == SourceMultus:
		return "multus"
	case c.Incomplete:
		return "incomplete"
	}
	return "attached"
}

// WriteVFsTable prints one row per VF.
func WriteVFsTable(w io.Writer, vfs []VF) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "DEVICE\tPF\tVF\tPOD\tCONTAINER\tINTERFACE\tNETWORK\tSOURCE")
	for _, v := range vfs {
		idx := strconv.Itoa(v.VFIndex)
		if v.Error != "" {
			v.Source, idx = "unreadable", ""
		}
		row(tw, v.DeviceID, v.PFName, idx, v.Pod.String(), shortID(v.ContainerID), v.Interface, v.Network, v.Source)
	}
	return tw.Flush()
}

// WriteStaleTable prints one row per stale entry or leak record.
func WriteStaleTable(w io.Writer, ss []Stale) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "CONTAINER\tPOD\tKIND\tNETNS\tACTION\tREASON")
	for _, s := range ss {
		row(tw, shortID(s.ContainerID), s.Pod.String(), s.Kind, s.NetNS, s.Action, s.Reason)
	}
	return tw.Flush()
}

// GCLine is the line printed for one container GC handled.
func GCLine(r GCResult) string {
	what := fmt.Sprintf("container %s (pod %s): DEL of %s", r.ContainerID, r.Pod, strings.Join(r.Interfaces, ", "))
	switch r.Outcome {
	case OutcomeWouldDelete:
		return "would delete " + what
	case OutcomeDeleted:
		return "deleted " + what
	case OutcomeGaveUp:
		return "gave up on " + what + "; leak recorded in " + r.LeakRecord
	}
	return "failed " + what + ": " + r.Error
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
