package k8s

import (
	"context"
	"fmt"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/plexus-cni/plexus/pkg/podnet"
)

// NADs returns the NADSource of c. It LISTs each namespace's
// NetworkAttachmentDefinitions once and answers every further lookup in that
// namespace from the list, so an ADD costs one request per namespace
// whatever the number of attachments.
func (c *Client) NADs() NADSource { return NADSource{c} }

// NADSource looks NADs up through the API (one LIST per namespace).
type NADSource struct{ c *Client }

func (s NADSource) NAD(ctx context.Context, namespace, name string) (*nadv1.NetworkAttachmentDefinition, error) {
	if namespace == "" || name == "" {
		return nil, fmt.Errorf("network-attachment-definition %q: namespace and name must both be set", namespace+"/"+name)
	}
	byName, err := s.c.nadsIn(ctx, namespace)
	if err != nil {
		return nil, err
	}
	nad, ok := byName[name]
	if !ok {
		return nil, fmt.Errorf("%w in the API", podnet.ErrNADNotFound)
	}
	return nad.DeepCopy(), nil
}

// nadsIn returns namespace's NADs by name, listing them on first use.
func (c *Client) nadsIn(ctx context.Context, namespace string) (map[string]*nadv1.NetworkAttachmentDefinition, error) {
	c.nadMu.Lock()
	defer c.nadMu.Unlock()
	if byName, ok := c.nadCache[namespace]; ok {
		return byName, nil
	}
	ctx, cancel := c.budget(ctx)
	defer cancel()
	var list *nadv1.NetworkAttachmentDefinitionList
	err := c.retry(ctx, false, func(ctx context.Context) error {
		var err error
		list, err = c.nads.NetworkAttachmentDefinitions(namespace).List(ctx, metav1.ListOptions{})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("network-attachment-definitions in namespace %s: list: %w", namespace, err)
	}
	byName := make(map[string]*nadv1.NetworkAttachmentDefinition, len(list.Items))
	for i := range list.Items {
		byName[list.Items[i].Name] = &list.Items[i]
	}
	c.nadCache[namespace] = byName
	return byName, nil
}
