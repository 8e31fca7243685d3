package nad

import (
	"bytes"
	"fmt"
	"strings"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	"sigs.k8s.io/yaml"
)

// ParseYAML parses one or more NAD documents separated by "---" lines. It
// returns the documents that parsed and an error naming each that did not.
func ParseYAML(data []byte) ([]*nadv1.NetworkAttachmentDefinition, error) {
	var out []*nadv1.NetworkAttachmentDefinition
	var errs []string
	for i, doc := range splitDocs(data) {
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		n := &nadv1.NetworkAttachmentDefinition{}
		if err := yaml.UnmarshalStrict(doc, n); err != nil {
			errs = append(errs, fmt.Sprintf("document %d: %v", i+1, err))
			continue
		}
		if n.APIVersion != "k8s.cni.cncf.io/v1" {
			errs = append(errs, fmt.Sprintf("document %d: field \"apiVersion\": %q, want k8s.cni.cncf.io/v1", i+1, n.APIVersion))
			continue
		}
		if n.Kind != "NetworkAttachmentDefinition" {
			errs = append(errs, fmt.Sprintf("document %d: field \"kind\": %q, want NetworkAttachmentDefinition", i+1, n.Kind))
			continue
		}
		if n.Name == "" {
			errs = append(errs, fmt.Sprintf("document %d: field \"metadata.name\": missing", i+1))
			continue
		}
		if n.Namespace == "" {
			n.Namespace = "default"
		}
		out = append(out, n)
	}
	if len(errs) > 0 {
		return out, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return out, nil
}

func splitDocs(data []byte) [][]byte {
	var docs [][]byte
	var cur []byte
	for _, line := range bytes.SplitAfter(data, []byte("\n")) {
		if t := bytes.TrimRight(line, " \t\r\n"); bytes.Equal(t, []byte("---")) || bytes.HasPrefix(t, []byte("--- ")) {
			docs = append(docs, cur)
			cur = nil
			continue
		}
		cur = append(cur, line...)
	}
	return append(docs, cur)
}
