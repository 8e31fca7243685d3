// Package resourceclaims converts typed ResourceClaims (resource.k8s.io/v1)
// to what plexus keeps of them, for sources that hold typed objects — an
// informer's store in plexusd — so that they answer resolve.ClaimSource
// exactly as the thin path's GET (pkg/k8s, which decodes JSON to keep the
// resource API types out of the plexus binary).
package resourceclaims

import (
	resourcev1 "k8s.io/api/resource/v1"

	"github.com/plexus-cni/plexus/pkg/podnet"
)

// FromAPI is what plexus keeps of a ResourceClaim: its identity and the
// devices of its allocation, in allocation order.
func FromAPI(c *resourcev1.ResourceClaim) *podnet.Claim {
	out := &podnet.Claim{Namespace: c.Namespace, Name: c.Name, UID: string(c.UID)}
	if a := c.Status.Allocation; a != nil {
		for _, r := range a.Devices.Results {
			out.Results = append(out.Results, podnet.ClaimResult{Request: r.Request, Driver: r.Driver, Pool: r.Pool, Device: r.Device})
		}
	}
	return out
}
