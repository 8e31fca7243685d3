// Package podnet holds the few types every stage of an attach shares —
// resolve, attach and publish (DESIGN.md, "Three stages") — and the
// adapters that feed them (pkg/k8s, pkg/podresources, pkg/nad): the pod an
// operation is for, and the errors that say something is not there. It
// imports nothing but the standard library, so any package may use it.
package podnet

import "errors"

// Pod is what plexus needs to know of a pod.
type Pod struct {
	Namespace   string
	Name        string
	UID         string
	Annotations map[string]string
}

// PodRef names a pod as CNI_ARGS does.
type PodRef struct {
	Namespace string
	Name      string
	UID       string // may be empty
}

func (p PodRef) String() string { return p.Namespace + "/" + p.Name }

var (
	// ErrPodNotFound is wrapped by a pod source for a pod that is not there.
	ErrPodNotFound = errors.New("pod not found")
	// ErrNADNotFound is wrapped by a NAD source for a NAD that is not there.
	ErrNADNotFound = errors.New("network-attachment-definition not found")
)
