package thin

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

func TestCNIError(t *testing.T) {
	if err := cniError(nil); err != nil {
		t.Fatalf("cniError(nil) = %v, want nil", err)
	}
	delegateErr := &types.Error{Code: 7, Msg: "invalid network config"}
	tests := []struct {
		name string
		err  error
		want types.Error
	}{
		{
			name: "plain error: internal, whole message",
			err:  fmt.Errorf("pod a/p: %w", errors.New(`network "a/x" (interface net1): field "type": boom`)),
			want: types.Error{Code: types.ErrInternal, Msg: `pod a/p: network "a/x" (interface net1): field "type": boom`},
		},
		{
			// skel alone would print only the delegate's error.
			name: "delegate error: its code, the whole message",
			err:  fmt.Errorf("pod a/p: %w", fmt.Errorf(`network "a/x" (interface net1): delegate macvlan: %w`, delegateErr)),
			want: types.Error{Code: 7, Msg: `pod a/p: network "a/x" (interface net1): delegate macvlan: invalid network config`},
		},
		{
			name: "joined errors: the first delegate error's code",
			err: fmt.Errorf("pod a/p: DEL: %w", errors.Join(
				errors.New(`network "a/y": plugin "tuning": not found`),
				fmt.Errorf(`network "a/x": %w`, &types.Error{Code: 11, Msg: "try again"}),
				fmt.Errorf(`network "a/z": %w`, &types.Error{Code: 4, Msg: "bad"}))),
			want: types.Error{Code: 11, Msg: "pod a/p: DEL: network \"a/y\": plugin \"tuning\": not found\nnetwork \"a/x\": try again\nnetwork \"a/z\": bad"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := cniError(tc.err)
			var te *types.Error
			if !errors.As(got, &te) {
				t.Fatalf("cniError returned %T, want *types.Error", got)
			}
			if !reflect.DeepEqual(*te, tc.want) {
				t.Errorf("cniError:\n got %+v\nwant %+v", *te, tc.want)
			}
		})
	}
}

func TestCNIErrorKeepsDetails(t *testing.T) {
	err := fmt.Errorf("pod a/p: %w", fmt.Errorf(`network "a/x" (interface net1): delegate sriov: %w`, &types.Error{Code: 11, Msg: "VF busy", Details: "device or resource busy"}))
	var te *types.Error
	if !errors.As(cniError(err), &te) {
		t.Fatal("not a *types.Error")
	}
	if te.Code != 11 || te.Details != "device or resource busy" {
		t.Errorf("code %d details %q, want 11 and the delegate's details", te.Code, te.Details)
	}
	if want := `pod a/p: network "a/x" (interface net1): delegate sriov: VF busy`; !strings.HasPrefix(te.Msg, want) {
		t.Errorf("msg %q, want it to start with %q", te.Msg, want)
	}
}
