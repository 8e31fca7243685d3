# plexus — see README.md. Every target works on a fresh Debian machine with Go;
# run as root, missing system packages are installed by hack/deps.sh.
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
CMDS := plexus sriov sriov-device-plugin plexus-install
CNI_PLUGINS_VERSION := v1.9.1
GOTEST_TIMEOUT ?= 45m
# Extra prerequisites of `make test` (e.g. the local Kubernetes binaries).
TEST_PREREQS := deps build cni-plugins k8s
export CGO_ENABLED := 0

.PHONY: all build deps cni-plugins test vet unit demo bench fuzz clean

all: build

build:
	@mkdir -p $(BIN)
	@for c in $(CMDS); do \
	  if [ -f cmd/$$c/main.go ]; then \
	    echo "go build -o bin/$$c ./cmd/$$c"; \
	    $(GO) build -trimpath -ldflags '-s -w' -o $(BIN)/$$c ./cmd/$$c || exit 1; \
	  fi; \
	done

deps:
	@hack/deps.sh

cni-plugins:
	@CNI_PLUGINS_VERSION=$(CNI_PLUGINS_VERSION) hack/cni-plugins.sh $(BIN)/cni

vet:
	$(GO) vet ./...

# Everything CI runs: vet, unit tests, root integration and cluster tests.
# The plexus binary the e2e suites exec is built with coverage (GOCOVERDIR):
# the figure for the engine's packages is printed after the tests.
COVER_DIR := $(BIN)/cover
ENGINE_PKGS := github.com/plexus-cni/plexus/pkg/thin,github.com/plexus-cni/plexus/pkg/resolve,github.com/plexus-cni/plexus/pkg/attach,github.com/plexus-cni/plexus/pkg/publish,github.com/plexus-cni/plexus/pkg/delegate,github.com/plexus-cni/plexus/pkg/cache
test: $(TEST_PREREQS)
	$(GO) vet ./...
	rm -rf $(COVER_DIR) && mkdir -p $(COVER_DIR)
	GOCOVERDIR=$(COVER_DIR) PLEXUS_REQUIRE_ROOT=1 $(GO) test -count=1 -timeout $(GOTEST_TIMEOUT) ./...
	@echo "coverage of the engine through the exec'd plexus binary (e2e):"
	-@$(GO) tool covdata percent -i=$(COVER_DIR) -pkg=$(ENGINE_PKGS)

unit:
	$(GO) test -count=1 ./...

demo: deps build cni-plugins
	@hack/demo.sh

bench: deps build cni-plugins
	@hack/bench.sh

fuzz:
	@hack/fuzz.sh

clean:
	rm -rf $(BIN)

# ---- Local Kubernetes (etcd, kube-apiserver, kubelet, containerd) ----------
.PHONY: k8s cluster-up cluster-down
k8s: deps
	@hack/k8s-bins.sh $(BIN)/k8s

cluster-up: k8s build cni-plugins
	$(GO) run ./e2e/cmd/localcluster up

cluster-down:
	$(GO) run ./e2e/cmd/localcluster down

# ---- Images and kind e2e (need Docker/kind for e2e-kind) ---------------------
.PHONY: images e2e-kind
images: build
	@hack/images.sh $(BIN)/images

e2e-kind: images
	@e2e/kind/run.sh
