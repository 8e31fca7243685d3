package testutil

import (
	"net"
	"testing"
)

// FreeAddr returns a loopback host:port free when it returns, for a
// process the test starts with that address as a flag.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
