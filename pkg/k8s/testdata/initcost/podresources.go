//go:build podresources

package main

import _ "github.com/plexus-cni/plexus/pkg/podresources"
