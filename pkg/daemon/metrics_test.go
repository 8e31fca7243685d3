package daemon

import (
	"net/http"
	"net/url"
	"testing"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct{ method, url, verb, res string }{
		{"GET", "/api/v1/namespaces/ns/pods/p", "GET", "pods"},
		{"GET", "/api/v1/pods?fieldSelector=spec.nodeName%3Dn", "LIST", "pods"},
		{"GET", "/api/v1/pods?watch=true&fieldSelector=x", "WATCH", "pods"},
		{"PATCH", "/api/v1/namespaces/ns/pods/p/status", "PATCH", "pods/status"},
		{"POST", "/api/v1/namespaces/ns/events", "POST", "events"},
		{"GET", "/apis/k8s.cni.cncf.io/v1/namespaces/ns/network-attachment-definitions", "LIST", "network-attachment-definitions"},
		{"GET", "/apis/k8s.cni.cncf.io/v1/network-attachment-definitions?watch=1", "WATCH", "network-attachment-definitions"},
		{"GET", "/apis/resource.k8s.io/v1/namespaces/ns/resourceclaims/c", "GET", "resourceclaims"},
		{"GET", "/api/v1/namespaces/ns", "GET", "namespaces"},
		{"GET", "/healthz", "GET", "other"},
	} {
		u, _ := url.Parse(tc.url)
		verb, res := classify(&http.Request{Method: tc.method, URL: u})
		if verb != tc.verb || res != tc.res {
			t.Errorf("%s %s: %s %s, want %s %s", tc.method, tc.url, verb, res, tc.verb, tc.res)
		}
	}
}
