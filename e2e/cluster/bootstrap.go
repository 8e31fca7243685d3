package cluster

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"
)

// NADCRDName is the NetworkAttachmentDefinition CRD's name.
const NADCRDName = "network-attachment-definitions.k8s.cni.cncf.io"

// CRDFile and PlexusManifest are the manifests the control plane applies.
func CRDFile() string        { return filepath.Join(RepoRoot(), "deployments", "crd.yaml") }
func PlexusManifest() string { return filepath.Join(RepoRoot(), "deployments", "plexus.yaml") }

// rbacKinds are the documents of deployments/plexus.yaml the control plane
// applies (no DaemonSet: the tests run plexus themselves).
var rbacKinds = map[string]bool{"ServiceAccount": true, "ClusterRole": true, "ClusterRoleBinding": true, "Role": true, "RoleBinding": true}

// resources maps the kinds the harness applies to their API resources.
var resources = map[string]schema.GroupVersionResource{
	"CustomResourceDefinition": {Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"},
	"Namespace":                {Version: "v1", Resource: "namespaces"},
	"ServiceAccount":           {Version: "v1", Resource: "serviceaccounts"},
	"ClusterRole":              {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"},
	"ClusterRoleBinding":       {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterrolebindings"},
	"Role":                     {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"},
	"RoleBinding":              {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"},
}

func (c *ControlPlane) bootstrap(ctx context.Context, opts Options) error {
	cs, err := c.Clientset()
	if err != nil {
		return err
	}
	for _, ns := range []string{"default", "kube-system"} {
		if err := ensureServiceAccount(ctx, cs, ns, "default"); err != nil {
			return err
		}
	}
	if opts.SkipManifests {
		return nil
	}
	dyn, err := dynamic.NewForConfig(c.RestConfig())
	if err != nil {
		return err
	}
	crd, err := readManifest(CRDFile(), nil)
	if err != nil {
		return err
	}
	if err := applyObjects(ctx, dyn, crd); err != nil {
		return err
	}
	if err := waitCRDEstablished(ctx, dyn, NADCRDName); err != nil {
		return err
	}
	if _, err := os.Stat(PlexusManifest()); err == nil {
		rbac, err := readManifest(PlexusManifest(), rbacKinds)
		if err != nil {
			return err
		}
		if err := applyObjects(ctx, dyn, rbac); err != nil {
			return err
		}
	}
	return nil
}

var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

// readManifest parses a multi-document YAML file, keeping only the kinds in
// keep (all when nil).
func readManifest(path string, keep map[string]bool) ([]*unstructured.Unstructured, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var objs []*unstructured.Unstructured
	for i, doc := range docSep.Split(string(b), -1) {
		if len(bytes.TrimSpace([]byte(doc))) == 0 {
			continue
		}
		var m map[string]interface{}
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", path, i, err)
		}
		if m == nil {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if keep != nil && !keep[u.GetKind()] {
			continue
		}
		if _, ok := resources[u.GetKind()]; !ok {
			return nil, fmt.Errorf("%s: document %d: kind %q not supported by the harness", path, i, u.GetKind())
		}
		objs = append(objs, u)
	}
	return objs, nil
}

// applyObjects server-side-applies objects; namespaced objects without a
// namespace go to "default". Missing namespaces are created.
func applyObjects(ctx context.Context, dyn dynamic.Interface, objs []*unstructured.Unstructured) error {
	for _, u := range objs {
		gvr := resources[u.GetKind()]
		data, err := u.MarshalJSON()
		if err != nil {
			return err
		}
		var ri dynamic.ResourceInterface = dyn.Resource(gvr)
		if namespaced(u.GetKind()) {
			ns := u.GetNamespace()
			if ns == "" {
				ns = "default"
			}
			if err := ensureNamespace(ctx, dyn, ns); err != nil {
				return err
			}
			ri = dyn.Resource(gvr).Namespace(ns)
		}
		force := true
		if _, err := ri.Patch(ctx, u.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: "plexus-e2e", Force: &force}); err != nil {
			return fmt.Errorf("apply %s %s: %w", u.GetKind(), u.GetName(), err)
		}
	}
	return nil
}

func namespaced(kind string) bool {
	switch kind {
	case "ServiceAccount", "Role", "RoleBinding":
		return true
	}
	return false
}

func ensureNamespace(ctx context.Context, dyn dynamic.Interface, ns string) error {
	u := &unstructured.Unstructured{Object: map[string]interface{}{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]interface{}{"name": ns}}}
	_, err := dyn.Resource(resources["Namespace"]).Create(ctx, u, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("namespace %s: %w", ns, err)
	}
	return nil
}

func waitCRDEstablished(ctx context.Context, dyn dynamic.Interface, name string) error {
	return waitFor("CRD "+name+" Established", crdTimeout, 50*time.Millisecond, func() (bool, error) {
		u, err := dyn.Resource(resources["CustomResourceDefinition"]).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		for _, c := range conds {
			m, _ := c.(map[string]interface{})
			if m["type"] == "Established" && m["status"] == "True" {
				return true, nil
			}
		}
		return false, nil
	})
}
