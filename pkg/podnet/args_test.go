package podnet

import (
	"reflect"
	"testing"
)

func TestParseArgs(t *testing.T) {
	tests := []struct {
		in      string
		want    [][2]string
		wantErr string
	}{
		{in: "", want: nil},
		{
			in:   "IgnoreUnknown=1;K8S_POD_NAMESPACE=a;K8S_POD_NAME=p;;K8S_POD_NETWORKS=x@net1,b/y",
			want: [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", "a"}, {"K8S_POD_NAME", "p"}, {"K8S_POD_NETWORKS", "x@net1,b/y"}},
		},
		{in: "K=a=b", want: [][2]string{{"K", "a=b"}}},
		{in: "K=;L=1", want: [][2]string{{"K", ""}, {"L", "1"}}},
		{in: "K8S_POD_NAME=p;junk", wantErr: `CNI_ARGS: "junk" is not KEY=VALUE`},
	}
	for _, tc := range tests {
		got, err := ParseArgs(tc.in)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("ParseArgs(%q): error %v, want %s", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseArgs(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestNewRequest(t *testing.T) {
	req, err := NewRequest("c1", "/run/netns/x", "eth0", "IgnoreUnknown=1;K8S_POD_NAMESPACE=a;K8S_POD_NAME=p;K8S_POD_UID=u;K8S_POD_NETWORKS=n@net1")
	if err != nil {
		t.Fatal(err)
	}
	want := PodRef{Namespace: "a", Name: "p", UID: "u"}
	if req.Pod != want || req.Networks != "n@net1" || len(req.Args) != 5 || req.LockKey() != "a/p" || req.NetNS != "/run/netns/x" {
		t.Fatalf("request %+v", req)
	}
	if _, err := NewRequest("c1", "", "eth0", "junk"); err == nil {
		t.Fatal("bad CNI_ARGS accepted")
	}
}
