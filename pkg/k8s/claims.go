package k8s

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/plexus-cni/plexus/pkg/podnet"
)

// Claim GETs a ResourceClaim (resource.k8s.io/v1) and returns its
// allocation: the pod's DRA devices for pkg/resolve (resolve.ClaimSource).
// It is a method of the NAD source so that every Kubernetes-mode resolver,
// which has one, can read claims too; plexusd serves the same interface
// from an informer.
func (s NADSource) Claim(ctx context.Context, namespace, name string) (*podnet.Claim, error) {
	return s.c.claim(ctx, namespace, name)
}

// apiClaim is the part of a ResourceClaim plexus reads (JSON), so that no
// resource.k8s.io type or scheme is loaded on the thin path.
type apiClaim struct {
	Metadata struct {
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
		UID       string `json:"uid"`
	} `json:"metadata"`
	Status struct {
		Allocation *struct {
			Devices struct {
				Results []struct {
					Request string `json:"request"`
					Driver  string `json:"driver"`
					Pool    string `json:"pool"`
					Device  string `json:"device"`
				} `json:"results"`
			} `json:"devices"`
		} `json:"allocation"`
	} `json:"status"`
}

func (c *Client) claim(ctx context.Context, namespace, name string) (*podnet.Claim, error) {
	if namespace == "" || name == "" {
		return nil, fmt.Errorf("resourceclaim %q: namespace and name must both be set", namespace+"/"+name)
	}
	ctx, cancel := c.budget(ctx)
	defer cancel()
	var raw []byte
	err := c.retry(ctx, false, func(ctx context.Context) error {
		var err error
		raw, err = c.core.Get().MaxRetries(0).
			AbsPath("/apis/resource.k8s.io/v1/namespaces", namespace, "resourceclaims", name).
			SetHeader("Accept", contentJSON).Do(ctx).Raw()
		return err
	})
	if apierrors.IsNotFound(err) {
		// The API's own error stays behind it (apierrors.IsNotFound).
		return nil, &quietError{msg: fmt.Sprintf("resourceclaim %s/%s not found", namespace, name), err: err}
	}
	if err != nil {
		return nil, fmt.Errorf("resourceclaim %s/%s: %w", namespace, name, err)
	}
	claim, err := ClaimFromJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("resourceclaim %s/%s: %w", namespace, name, err)
	}
	return claim, nil
}

// ClaimFromJSON is what plexus keeps of a ResourceClaim in its JSON form
// (pkg/k8s/resourceclaims.FromAPI converts a typed one the same way).
func ClaimFromJSON(raw []byte) (*podnet.Claim, error) {
	var ac apiClaim
	if err := json.Unmarshal(raw, &ac); err != nil {
		return nil, err
	}
	out := &podnet.Claim{Namespace: ac.Metadata.Namespace, Name: ac.Metadata.Name, UID: ac.Metadata.UID}
	if a := ac.Status.Allocation; a != nil {
		for _, r := range a.Devices.Results {
			out.Results = append(out.Results, podnet.ClaimResult{Request: r.Request, Driver: r.Driver, Pool: r.Pool, Device: r.Device})
		}
	}
	return out, nil
}

// PoolAttributes returns, by device name, the string attributes (fully
// qualified: an unqualified name is in the driver's domain) of the devices
// another DRA driver publishes in a pool (resolve.DeviceAttributes): one
// LIST of the driver's ResourceSlices.
func (s NADSource) PoolAttributes(ctx context.Context, driver, pool string) (map[string]map[string]string, error) {
	return s.c.poolAttributes(ctx, driver, pool)
}

// apiSlices is the part of a ResourceSliceList plexus reads.
type apiSlices struct {
	Items []struct {
		Spec struct {
			Driver string `json:"driver"`
			Pool   struct {
				Name string `json:"name"`
			} `json:"pool"`
			Devices []struct {
				Name       string `json:"name"`
				Attributes map[string]struct {
					String *string `json:"string"`
				} `json:"attributes"`
			} `json:"devices"`
		} `json:"spec"`
	} `json:"items"`
}

func (c *Client) poolAttributes(ctx context.Context, driver, pool string) (map[string]map[string]string, error) {
	ctx, cancel := c.budget(ctx)
	defer cancel()
	var raw []byte
	err := c.retry(ctx, false, func(ctx context.Context) error {
		var err error
		raw, err = c.core.Get().MaxRetries(0).AbsPath("/apis/resource.k8s.io/v1/resourceslices").
			Param("fieldSelector", "spec.driver="+driver).SetHeader("Accept", contentJSON).Do(ctx).Raw()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("resourceslices of driver %s: %w", driver, err)
	}
	var list apiSlices
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("resourceslices of driver %s: %w", driver, err)
	}
	out := map[string]map[string]string{}
	for _, sl := range list.Items {
		if sl.Spec.Driver != driver || sl.Spec.Pool.Name != pool {
			continue
		}
		for _, d := range sl.Spec.Devices {
			attrs := map[string]string{}
			for k, v := range d.Attributes {
				if v.String == nil {
					continue
				}
				if !strings.Contains(k, "/") {
					k = driver + "/" + k
				}
				attrs[k] = *v.String
			}
			out[d.Name] = attrs
		}
	}
	return out, nil
}

// quietError says msg, and wraps err without repeating it.
type quietError struct {
	msg string
	err error
}

func (e *quietError) Error() string { return e.msg }
func (e *quietError) Unwrap() error { return e.err }
