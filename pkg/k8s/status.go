package k8s

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/plexus-cni/plexus/pkg/podnet"
	"github.com/plexus-cni/plexus/pkg/publish"
)

// Event reasons plexus records on a pod.
const (
	ReasonAttached = "AddedInterface"
	ReasonFailed   = "AttachFailed"
	ReasonWarning  = "NetworkWarning"
)

// maxEventMessage keeps Event messages within what the API accepts.
const maxEventMessage = 1024

// failedBudget bounds Failed: the ADD is failing already, reporting it must
// not hold it up for long.
const failedBudget = 3 * time.Second

// Status returns the StatusSink of c.
func (c *Client) Status() publish.Sink { return statusSink{c} }

type statusSink struct{ c *Client }

// Attached writes status as the pod's network-status annotation with one
// merge PATCH of the pods/status subresource (retried on conflict) and
// records one Normal Event listing what was attached. The two requests go
// out together (one round trip instead of two on every ADD): the Event says
// the interfaces were added, which holds even if the write then fails, and a
// failed write is followed by the engine's rollback and Warning Event. Only
// the annotation is the contract: an Event that cannot be recorded does not
// fail the ADD (the engine undoes the ADD when Attached fails); it is
// reported by EventErrors.
func (s statusSink) Attached(ctx context.Context, pod *podnet.Pod, containerID string, status []nadv1.NetworkStatus) error {
	c := s.c
	if pod == nil || pod.Namespace == "" || pod.Name == "" {
		return fmt.Errorf("network-status: no pod to write it to (namespace and name must be set)")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.recordEventBestEffort(ctx, pod, corev1.EventTypeNormal, ReasonAttached, attachedMessage(status))
	}()
	err := c.patchNetworkStatus(ctx, pod, status)
	<-done
	return err
}

// Failed records one Warning Event naming the network and the reason. It is
// best effort: the ADD's own error is what the runtime reports.
func (s statusSink) Failed(ctx context.Context, pod *podnet.Pod, network string, err error) {
	if pod == nil || err == nil {
		return
	}
	ctx, cancel := s.c.within(ctx, min(failedBudget, s.c.opts.Budget))
	defer cancel()
	// The engine's errors name the network, interface and field already;
	// the Event is about the pod, so neither is repeated here.
	s.c.recordEventBestEffort(ctx, pod, corev1.EventTypeWarning, ReasonFailed, FailedMessage(network, err))
}

// Warned records one Warning Event with every message: what plexus accepted
// but did not do as asked. Best effort, like Failed.
func (s statusSink) Warned(ctx context.Context, pod *podnet.Pod, messages []string) {
	if pod == nil || len(messages) == 0 {
		return
	}
	ctx, cancel := s.c.within(ctx, min(failedBudget, s.c.opts.Budget))
	defer cancel()
	s.c.recordEventBestEffort(ctx, pod, corev1.EventTypeWarning, ReasonWarning, strings.Join(messages, "; "))
}

// Publish writes status as the pod's network-status and records one Event:
// Normal (what was attached), or Warning with warnings when there are any
// (plexusd: one Event per ADD). The Event is best effort; the error is the
// write's.
func (c *Client) Publish(ctx context.Context, pod *podnet.Pod, status []nadv1.NetworkStatus, warnings []string) error {
	if pod == nil || pod.Namespace == "" || pod.Name == "" {
		return fmt.Errorf("network-status: no pod to write it to (namespace and name must be set)")
	}
	// The Event goes out beside the PATCH (one round trip, not two), as
	// Attached does.
	done := make(chan struct{})
	go func() {
		defer close(done)
		if len(warnings) > 0 {
			c.recordEventBestEffort(ctx, pod, corev1.EventTypeWarning, ReasonWarning, attachedMessage(status)+"; "+strings.Join(warnings, "; "))
		} else {
			c.recordEventBestEffort(ctx, pod, corev1.EventTypeNormal, ReasonAttached, attachedMessage(status))
		}
	}()
	err := c.patchNetworkStatus(ctx, pod, status)
	<-done
	return err
}

// Warning records one Warning Event (reason ReasonFailed or
// ReasonWarning) and returns its error: plexusd retries it.
func (c *Client) Warning(ctx context.Context, pod *podnet.Pod, reason, message string) error {
	return c.recordEvent(ctx, pod, corev1.EventTypeWarning, reason, message)
}

// FailedMessage is the message of a failed ADD's Event: the error, with
// the network named first when the error does not name it.
func FailedMessage(network string, err error) string {
	msg := err.Error()
	if network != "" && !strings.Contains(msg, fmt.Sprintf("network %q", network)) {
		msg = fmt.Sprintf("network %q: %s", network, msg)
	}
	return msg
}

// EventErrors returns the errors of Events that could not be recorded.
func (c *Client) EventErrors() []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]error(nil), c.eventErrs...)
}

// Warn records a Warning Event on a pod (MultiNetworkPolicy errors,
// pkg/policysync).
func (c *Client) Warn(ctx context.Context, pod *podnet.Pod, reason, message string) error {
	return c.recordEvent(ctx, pod, corev1.EventTypeWarning, reason, message)
}

func (c *Client) recordEventBestEffort(ctx context.Context, pod *podnet.Pod, eventType, reason, message string) {
	if err := c.recordEvent(ctx, pod, eventType, reason, message); err != nil {
		c.mu.Lock()
		c.eventErrs = append(c.eventErrs, fmt.Errorf("pod %s/%s: %s event %s: %w", pod.Namespace, pod.Name, eventType, reason, err))
		c.mu.Unlock()
	}
}

func (c *Client) patchNetworkStatus(ctx context.Context, pod *podnet.Pod, status []nadv1.NetworkStatus) error {
	if status == nil {
		status = []nadv1.NetworkStatus{}
	}
	value, err := json.MarshalIndent(status, "", "    ")
	if err != nil {
		return fmt.Errorf("pod %s/%s: network-status: %w", pod.Namespace, pod.Name, err)
	}
	meta := map[string]any{
		"annotations": map[string]string{nadv1.NetworkStatusAnnot: string(value)},
	}
	if pod.UID != "" {
		meta["uid"] = pod.UID // the write fails rather than land on a re-created pod
	}
	patch, err := json.Marshal(map[string]any{"metadata": meta})
	if err != nil {
		return fmt.Errorf("pod %s/%s: network-status: %w", pod.Namespace, pod.Name, err)
	}
	ctx, cancel := c.budget(ctx)
	defer cancel()
	err = c.retry(ctx, true, func(ctx context.Context) error {
		return c.core.Patch(types.MergePatchType).MaxRetries(0).
			Namespace(pod.Namespace).Resource("pods").Name(pod.Name).SubResource("status").
			Body(patch).Do(ctx).Error()
	})
	if err != nil {
		return fmt.Errorf("pod %s/%s: write annotation %s: %w", pod.Namespace, pod.Name, nadv1.NetworkStatusAnnot, err)
	}
	return nil
}

func (c *Client) recordEvent(ctx context.Context, pod *podnet.Pod, eventType, reason, message string) error {
	ev := c.newEvent(pod, eventType, reason, message)
	ctx, cancel := c.budget(ctx)
	defer cancel()
	return c.retry(ctx, false, func(ctx context.Context) error {
		return c.core.Post().MaxRetries(0).
			Namespace(pod.Namespace).Resource("events").
			Body(ev).Do(ctx).Error()
	})
}

func (c *Client) newEvent(pod *podnet.Pod, eventType, reason, message string) *corev1.Event {
	now := time.Now()
	host := c.opts.Host
	if host == "" {
		c.mu.Lock()
		host = c.nodes[pod.Namespace+"/"+pod.Name]
		c.mu.Unlock()
	}
	if host == "" {
		host = hostname()
	}
	if len(message) > maxEventMessage {
		message = message[:maxEventMessage-3] + "..."
	}
	return &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{
			Name:      fmt.Sprintf("%s.%x", pod.Name, now.UnixNano()),
			Namespace: pod.Namespace,
		},
		InvolvedObject: corev1.ObjectReference{
			APIVersion: "v1",
			Kind:       "Pod",
			Namespace:  pod.Namespace,
			Name:       pod.Name,
			UID:        types.UID(pod.UID),
		},
		Reason:              reason,
		Message:             message,
		Type:                eventType,
		Source:              corev1.EventSource{Component: c.opts.Component, Host: host},
		FirstTimestamp:      metav1.NewTime(now),
		LastTimestamp:       metav1.NewTime(now),
		Count:               1,
		ReportingController: c.opts.Component,
		ReportingInstance:   c.opts.Component + "-" + host,
	}
}

// attachedMessage lists the attached interfaces: "Add eth0 [10.0.0.5/24]
// from default/cluster; net1 [...] from ns/nad".
func attachedMessage(status []nadv1.NetworkStatus) string {
	parts := make([]string, 0, len(status))
	for _, st := range status {
		parts = append(parts, fmt.Sprintf("%s %v from %s", st.Interface, st.IPs, st.Name))
	}
	return "Add " + strings.Join(parts, "; ")
}
