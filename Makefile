# plexus — see README.md. Every target works on a fresh Debian machine with Go;
# run as root, missing system packages are installed by hack/deps.sh.
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
CMDS := plexus plexus-thin plexusd sriov passthru sriov-device-plugin plexus-install plexusctl sriov-dra-driver
CNI_PLUGINS_VERSION := v1.9.1
WHEREABOUTS_VERSION := v0.9.2
GOTEST_TIMEOUT ?= 45m
# staticcheck, built by `go run` from the module proxy at this version
# (checksums verified against sum.golang.org; cached after the first run).
STATICCHECK_VERSION := v0.6.1
# Extra prerequisites of `make test` (e.g. the local Kubernetes binaries).
TEST_PREREQS := deps build cni-plugins k8s flannel
export CGO_ENABLED := 0
# One version for every binary (--version) and image tag. Default: the tag
# git describes (v0.2.0, v0.2.0-3-gabc1234-dirty); before the first tag, the
# release the VERSION file names with the commit (v0.2.0-dev.abc1234); out
# of git, the VERSION file; without one, dev. `make build VERSION=v1.2.3`
# stamps another.
RELEASE := $(shell cat $(CURDIR)/VERSION 2>/dev/null)
ifeq ($(origin VERSION),undefined)
VERSION := $(shell git describe --tags --dirty 2>/dev/null || \
  { c=$$(git describe --always --dirty 2>/dev/null) && echo "$(or $(RELEASE),dev)-dev.$$c"; } || \
  echo "$(or $(RELEASE),dev)")
endif
GOBUILD = $(GO) build -trimpath -ldflags '-s -w -X main.version=$(VERSION)'
# Platforms of `make images`: each image is an OCI index of these (linux).
IMAGE_ARCHS ?= amd64 arm64

define newline


endef

.PHONY: all build deps cni-plugins test vet lint unit demo bench fuzz clean

all: build

build:
	@mkdir -p $(BIN)
	@echo "version $(VERSION)"
	$(foreach c,$(CMDS),$(GOBUILD) -o $(BIN)/$(c) ./cmd/$(c)$(newline))

deps:
	@hack/deps.sh

cni-plugins: reference-plugins whereabouts

# The reference CNI plugins: all the demo needs.
.PHONY: reference-plugins whereabouts
reference-plugins:
	@CNI_PLUGINS_VERSION=$(CNI_PLUGINS_VERSION) hack/cni-plugins.sh $(BIN)/cni

# whereabouts, the cluster-wide IPAM e2e/scenarios runs on the local node.
whereabouts:
	@WHEREABOUTS_VERSION=$(WHEREABOUTS_VERSION) hack/whereabouts.sh $(BIN)/cni

vet:
	$(GO) vet ./...

# go vet, staticcheck (staticcheck.conf) and the project's own rules
# (hack/plexuslint: no raw netlink dumps outside netlinksafe, no PLEXUS_*
# variables read by production code, no Kubernetes/grpc/protobuf/net/http
# package in the shim's import graph), each as a go vet tool.
lint:
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/plexuslint ./hack/plexuslint
	$(GO) vet -vettool=$(BIN)/plexuslint ./...

# Everything CI runs: lint, unit tests, root integration and cluster tests.
# The plexus binary the e2e suites exec is built with coverage (GOCOVERDIR):
# the figure for the engine's packages is printed after the tests.
COVER_DIR := $(BIN)/cover
ENGINE_PKGS := github.com/plexus-cni/plexus/pkg/thin,github.com/plexus-cni/plexus/pkg/resolve,github.com/plexus-cni/plexus/pkg/attach,github.com/plexus-cni/plexus/pkg/publish,github.com/plexus-cni/plexus/pkg/delegate,github.com/plexus-cni/plexus/pkg/cache
test: lint $(TEST_PREREQS)
	rm -rf $(COVER_DIR) && mkdir -p $(COVER_DIR)
	GOCOVERDIR=$(COVER_DIR) PLEXUS_REQUIRE_ROOT=1 $(GO) test -count=1 -timeout $(GOTEST_TIMEOUT) ./...
	@echo "coverage of the engine through the exec'd plexus binary (e2e):"
	-@$(GO) tool covdata percent -i=$(COVER_DIR) -pkg=$(ENGINE_PKGS)

unit:
	$(GO) test -count=1 ./...

# The demo installs only what it needs: iproute2 and ping, the binaries,
# the reference plugins.
demo: build reference-plugins
	@hack/deps.sh --demo
	@hack/demo.sh

bench: deps build cni-plugins
	@hack/bench.sh

fuzz:
	@hack/fuzz.sh

clean:
	rm -rf $(BIN)

# ---- Local Kubernetes (etcd, kube-apiserver, kubelet, containerd) ----------
.PHONY: k8s cluster-up cluster-down
# flanneld, the real overlay e2e/scenarios runs as the node's primary
# (built once from the Go module proxy, cached in bin/flannel).
.PHONY: flannel
flannel:
	@hack/flannel.sh $(BIN)/flannel

k8s: deps
	@hack/k8s-bins.sh $(BIN)/k8s

cluster-up: k8s build cni-plugins
	$(GO) run ./e2e/cmd/localcluster up

cluster-down:
	$(GO) run ./e2e/cmd/localcluster down

# ---- Images and kind e2e (need Docker/kind for e2e-kind) ---------------------
.PHONY: images e2e-kind
# Cross-compiled into bin/linux_<arch>/ for each of IMAGE_ARCHS, then one
# OCI tarball per image, tagged $(VERSION), holding an index of them all;
# the plexus image's nft comes from Debian 12 packages (hack/nft-rootfs.sh,
# cached in $(BIN)/nft).
images:
	$(foreach a,$(IMAGE_ARCHS),$(foreach c,$(CMDS),GOOS=linux GOARCH=$(a) $(GOBUILD) -o $(BIN)/linux_$(a)/$(c) ./cmd/$(c)$(newline)))
	IMAGE_TAG=$(VERSION) NFT_DIR=$(BIN)/nft hack/images.sh $(BIN)/images $(foreach a,$(IMAGE_ARCHS),$(a)=$(BIN)/linux_$(a))

# The kind e2e applies deployments/*.yaml, which name the release's tag.
e2e-kind: VERSION = $(RELEASE)
e2e-kind: images
	@e2e/kind/run.sh
