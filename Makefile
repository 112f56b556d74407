# canaryline: CONTRIBUTING.md (Make targets) says what each target does.
GO      ?= go
OUT     ?= _output
BIN     := $(OUT)/bin
PKGS    := ./...
# Static, reproducible binaries.
GOBUILD := CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w -buildid='
TEST_TIMEOUT ?= 45m
# The go line of go.mod: the toolchain the pinned step image (catalog/IMAGE_DIGEST) is built with.
GO_VERSION := $(shell sed -n "s/^go //p" go.mod)

.PHONY: all build test unit lint pipelines catalog bundle image plugin controlplane prometheus emulators node-deps realnode tekton tools test-builds cluster-up cluster-down demo bench clean

all: lint build test

## build: static binaries of the step image (canaryline-steps), the canaryline tool and the sample app into _output/bin
build:
	@mkdir -p $(BIN)
	$(GOBUILD) -o $(BIN)/canaryline-steps ./cmd/canaryline-steps
	$(GOBUILD) -o $(BIN)/canaryline ./cmd/canaryline
	$(GOBUILD) -o $(BIN)/sample-app ./internal/dev/app/sample-app

## controlplane: build (first run, ~7 min on 2 cores) or find cached the local control plane, with progress
controlplane:
	$(GO) run ./cmd/canaryline cluster build

## realnode: as root, build (first run, a few minutes) or find cached a real node's kubelet, containerd, runc and
## CNI plugins: the integration tests start one beside the KWOK nodes
realnode: node-deps
	@if [ "$$(id -u)" = 0 ]; then $(GO) run ./cmd/canaryline cluster build --real-node; \
	  else echo "realnode: not root: the tests run without a real node (TestRealNode... skip)"; fi

## tekton: as root, build (first run, about 5 min) or find cached Tekton's and Triggers' programs and images:
## test/tekton runs the Pipelines on them
tekton: realnode
	@if [ "$$(id -u)" = 0 ]; then $(GO) run ./cmd/canaryline cluster build --tekton; \
	  else echo "tekton: not root: the tests run without Tekton (TestTekton... skip)"; fi

## tools: build (first run, a few minutes) or find cached tkn and a Prometheus with Kubernetes service discovery,
## which the tests use
tools:
	$(GO) run ./cmd/canaryline cluster build --tools

## test: lint, then unit and integration tests on the real local control plane and a real Prometheus (both
## started and stopped by the tests). Lint and the builds the tests need run side by side; the two longest test
## packages start first.
test: node-deps prometheus emulators
	$(GO) build -o $(BIN)/canaryline ./cmd/canaryline
	@$(MAKE) --no-print-directory -j2 lint test-builds CANARYLINE=$(BIN)/canaryline
	$(GO) test -count=1 -parallel 4 -timeout $(TEST_TIMEOUT) $(TEST_PKGS)

# The longest packages first (go test starts packages in the order given), so that they do not start last.
TEST_PKGS := $(if $(filter ./...,$(PKGS)),./test/tekton ./test/integration) $(PKGS)

## test-builds: what the tests need built from the Go module proxy, one after the other: the control plane, as root
## the real node (which reuses its compiled Kubernetes) and Tekton, then tkn and Prometheus
# make test builds canaryline first (with go vet's and go test's flags, so that lint reuses its compiled packages
# rather than compiling them a second time beside it) and passes it as CANARYLINE.
CANARYLINE ?= $(GO) run ./cmd/canaryline
test-builds:
	@if [ "$$(id -u)" = 0 ]; then $(CANARYLINE) cluster build --real-node --tekton --tools; \
	  else echo "test-builds: not root: the tests run without a real node and Tekton (TestRealNode..., TestTekton... skip)"; \
	  $(CANARYLINE) cluster build --tools; fi

## prometheus: Debian's prometheus package for the tests (as root, when apt-get is there); without it the tests
## build Prometheus from the Go module proxy and cache it (about 7 min, once)
prometheus:
	@command -v prometheus >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; } \
	  || echo "prometheus: not installed from Debian; the tests will build it from the Go module proxy"; }
	@command -v prometheus >/dev/null 2>&1 && prometheus --version 2>&1 | head -1 || true

## emulators: Debian's qemu-user (as root, when apt-get is there, without binfmt registration), so that the
## multi-arch test runs each platform's step binary; without it that test reads their ELF headers only
emulators:
	@command -v qemu-aarch64 >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-user >/dev/null; } \
	  || echo "emulators: qemu-user not installed; TestMultiArch... checks the other platforms' binaries by their ELF headers"; }

## node-deps: what building a real node's runc needs (cgo with seccomp): Debian's libseccomp-dev and pkg-config,
## installed as root when apt-get is there
node-deps:
	@pkg-config --exists libseccomp 2>/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libseccomp-dev pkg-config >/dev/null; } \
	  || echo "node-deps: install libseccomp-dev and pkg-config (Debian) as root; the real node's runc build needs them"; }
	@pkg-config --modversion libseccomp 2>/dev/null | sed 's/^/node-deps: libseccomp /' || true

## unit: the fast tests only (no control plane)
unit:
	$(GO) test -short -count=1 $(PKGS)

## lint: gofmt, go vet, and the pinned tooling libraries still build together
lint:
	@out=$$(gofmt -l $$(find . -name '*.go' -not -path './_output/*')); \
	  if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) build -tags tools -o /dev/null ./internal/tools/pins

## pipelines: generate pipelines/ (the 1, 3 and 5 step canary releases, blue-green, prebuilt variants) from one source
pipelines:
	$(GO) run ./cmd/canaryline generate pipelines

## catalog: generate catalog/ (tektoncd/catalog layout, Artifact Hub annotations, pinned step image) from tasks/ and pipelines/
catalog:
	$(GO) run ./cmd/canaryline catalog generate

## bundle: push every Task and Pipeline as a Tekton bundle: make bundle BUNDLE=quay.io/team/canaryline-bundle:v0.1
bundle:
	$(GO) run ./cmd/canaryline bundle push --ref $(BUNDLE)

## image: the step image as an OCI layout (_output/image/oci) and a docker tarball, built without a container engine
## plugin: the kubectl/oc plugin (kubectl-canaryline) for every platform, as reproducible archives, and its Krew
## manifest, in $(OUT)/plugin (VERSION=v0.1.0)
plugin:
	$(GO) run ./cmd/canaryline plugin release --dir $(OUT)/plugin --version $(or $(VERSION),v0.1.0)

image:
	GOTOOLCHAIN=go$(GO_VERSION) $(GO) run ./cmd/canaryline image --out $(OUT)/image/oci --tarball $(OUT)/image/canaryline-steps.tar \
	  --digest-file catalog/IMAGE_DIGEST

## cluster-up / cluster-down: the local control plane in the background; eval the printed line for KUBECONFIG
cluster-up: build
	$(BIN)/canaryline cluster up --detach

cluster-down:
	$(BIN)/canaryline cluster down

## demo: the main job, described in docs/demo.md: two canary releases on the embedded control plane (as root as
## PipelineRuns on Tekton and the real node); another cluster: canaryline demo --kubeconfig FILE
demo: build
	$(BIN)/canaryline demo

## bench: Go benchmarks (control-plane start, image size), and the release beside Argo Rollouts (its controller built
## from the Go module proxy on first use, about 13 min on 2 cores); figures, not pass/fail
bench: controlplane
	$(GO) run ./cmd/canaryline bench

clean:
	rm -rf $(OUT)
