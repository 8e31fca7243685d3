// Package rest stands in for a heavy Kubernetes package.
package rest

type Config struct{}
