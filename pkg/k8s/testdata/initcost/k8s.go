//go:build !baseline

package main

import _ "github.com/plexus-cni/plexus/pkg/k8s"
