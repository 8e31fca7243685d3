package podnet

// PodClaim is one of a pod's ResourceClaims: Name is the pod's reference
// (spec.resourceClaims[].name), ClaimName the ResourceClaim object in the
// pod's namespace (generated from a template, or named), "" while none.
type PodClaim struct {
	Name      string
	ClaimName string
}

// Claim is what plexus needs of a ResourceClaim: its allocation.
type Claim struct {
	Namespace string
	Name      string
	UID       string
	Results   []ClaimResult
}

// ClaimResult is one allocated device (status.allocation.devices.results[]).
type ClaimResult struct {
	Request string
	Driver  string
	Pool    string
	Device  string
}
