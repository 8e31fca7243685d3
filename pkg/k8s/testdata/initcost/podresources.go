//go:build podresources && !baseline

package main

import _ "github.com/plexus-cni/plexus/pkg/podresources"
