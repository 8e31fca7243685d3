// Command plexuslint checks the project's own rules (package rules) as a
// `go vet` tool:
//
//	go build -o bin/plexuslint ./hack/plexuslint
//	go vet -vettool=bin/plexuslint ./...
//
// `make lint` runs it after staticcheck.
package main

import (
	"golang.org/x/tools/go/analysis/unitchecker"

	"github.com/plexus-cni/plexus/hack/plexuslint/rules"
)

func main() { unitchecker.Main(rules.Analyzers...) }
