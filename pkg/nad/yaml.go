package nad

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
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

// splitDocs splits a multi-document YAML stream at "---" lines, with
// apimachinery's YAML reader (the one kubectl uses).
func splitDocs(data []byte) [][]byte {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if err != nil { // io.EOF; a bufio read of memory fails no other way
			return docs
		}
		docs = append(docs, doc)
	}
}
