# The two set-up commands of the README:
#   make demo   builds opm and runs the main job (scripts/demo.sh): init,
#               build, a bundle, publish to a loopback registry, consume
#               with the real cue CLI
#   make test   installs what the tests need, builds and runs the whole suite
# Both install what is missing on a fresh Debian machine and nothing else.

SHELL := bash
# The cuelang.org/go version linked into opm; the `cue` CLI used by the
# differential tests is installed at the same version.
CUE_VERSION := $(shell awk '$$1 == "require" && $$2 == "cuelang.org/go" {print $$3} $$1 == "cuelang.org/go" {print $$2}' go-shim/go.mod)
# The release binary is static and non-PIE (glibc, crt-static): it runs in
# an empty container. `make DYNAMIC=1 build` links the C library
# dynamically instead, for distributions whose policy prefers it. Both
# build for the host triple explicitly, so that build scripts and proc
# macros stay dynamic; the binary is target/<host>/release/opm.
HOST := $(shell rustc -vV | sed -n 's/^host: //p')
export CARGO_BUILD_TARGET := $(HOST)
ifeq ($(DYNAMIC),)
export CARGO_TARGET_$(shell echo '$(HOST)' | tr 'a-z-' 'A-Z_')_RUSTFLAGS := -C target-feature=+crt-static -C relocation-model=static
endif
BIN := $(CURDIR)/target/$(HOST)/release
export OPM := $(BIN)/opm
TOOLS := $(CURDIR)/tools/bin
CUE := $(TOOLS)/cue
# The real cosign CLI, for the signature interop tests (v2: signatures
# under the sha256-<digest>.sig tag, as opm writes them).
COSIGN_VERSION := v2.6.5
COSIGN := $(TOOLS)/cosign
COSIGN_STAMP := $(TOOLS)/.cosign-$(COSIGN_VERSION)
# A second registry implementation for the registry matrix (the first is
# Debian's docker-registry, distribution 2.8).
REGISTRY3_VERSION := v3.1.2
REGISTRY3 := $(TOOLS)/registry
REGISTRY3_STAMP := $(TOOLS)/.registry-$(REGISTRY3_VERSION)
# A real etcd and kube-apiserver for the delivery tests (opm apply, diff,
# status, delete), built from the Go module proxy by scripts/build-kube.sh
# (about 8 min on 2 cores the first time, seconds with Go's build cache);
# kubectl the same way, for the bench only.
ETCD_VERSION := v3.6.16
KUBE_VERSION := v1.37.2
KUBE_STAMP := $(TOOLS)/.kube-$(KUBE_VERSION)-etcd-$(ETCD_VERSION)
KUBECTL_STAMP := $(TOOLS)/.kubectl-$(KUBE_VERSION)
# libclang-dev: bindgen; libc6-dev: the static C library (build). The rest: tests (real registry, skopeo,
# htpasswd, openssl for a TLS registry; python3 for the demo and bench; man-db
# to read the installed manual pages).
BUILD_PACKAGES := libclang-dev libc6-dev
TEST_PACKAGES := docker-registry skopeo apache2-utils openssl python3 man-db


# make install PREFIX=/usr/local DESTDIR=...: the binary, a manual page per
# command, bash/zsh/fish completions, the licence and the third-party
# licence notices of what the binary links.
PREFIX ?= /usr/local
DESTDIR ?=
SHARE = $(DESTDIR)$(PREFIX)/share

.PHONY: build demo test lint bench build-deps test-deps install clean

build: build-deps
	cargo build --release --locked

demo: build test-deps $(CUE)
	OPM_TEST_CUE=$(CUE) scripts/demo.sh

test: build-deps test-deps lint $(CUE) $(COSIGN_STAMP) $(REGISTRY3_STAMP) $(KUBE_STAMP)
	OPM_TEST_CUE=$(CUE) OPM_TEST_COSIGN=$(COSIGN) OPM_TEST_REGISTRY3=$(REGISTRY3) \
	OPM_TEST_ETCD=$(TOOLS)/etcd OPM_TEST_KUBE_APISERVER=$(TOOLS)/kube-apiserver cargo test --release --locked

# The code as the house keeps it: rustfmt (rustfmt.toml), clippy with every
# warning an error (tests included), gofmt and go vet for the shim.
lint: build-deps
	cargo fmt --check
	cargo clippy --all-targets --release --locked -- -D warnings
	@test -z "$$(cd go-shim && gofmt -l .)" || { echo "gofmt: go-shim needs formatting:"; cd go-shim && gofmt -l .; exit 1; }
	cd go-shim && GOTOOLCHAIN=local go vet ./...

# Figures (opm against cue; the result cache over a monorepo; apply and
# diff against kubectl on a real apiserver), then the soak: 200 random
# dependency graphs through both tools.
# BENCH_BEFORE=path/to/older/opm compares the trust chain's cost with it.
bench: build test-deps $(CUE) $(COSIGN_STAMP) $(REGISTRY3_STAMP) $(KUBECTL_STAMP)
	OPM_TEST_CUE=$(CUE) OPM_TEST_REGISTRY3=$(REGISTRY3) scripts/bench.sh
	scripts/bench-trust.py $(CUE) $(COSIGN) $(BENCH_BEFORE) $(OPM)
	scripts/bench-results.py $(CUE) $(OPM)
	scripts/bench-deliver.py $(OPM) $(TOOLS)/kubectl $(TOOLS)/etcd $(TOOLS)/kube-apiserver
	OPM_TEST_CUE=$(CUE) OPM_GRAPHS=200 cargo test --release --locked -- --nocapture deps_diff::random

# Installs Debian packages only when one is missing, so a ready machine
# never touches apt.
build-deps:
	@scripts/apt-ensure.sh $(BUILD_PACKAGES)

test-deps:
	@scripts/apt-ensure.sh $(TEST_PACKAGES)

$(CUE): go-shim/go.mod
	GOBIN=$(TOOLS) GOTOOLCHAIN=local go install cuelang.org/go/cmd/cue@$(CUE_VERSION)
	@touch $@

# go install reuses Go's module and build caches: seconds when warm.
$(COSIGN_STAMP):
	GOBIN=$(TOOLS) GOTOOLCHAIN=local go install github.com/sigstore/cosign/v2/cmd/cosign@$(COSIGN_VERSION)
	@rm -f $(TOOLS)/.cosign-* && touch $@

$(REGISTRY3_STAMP):
	GOBIN=$(TOOLS) GOTOOLCHAIN=local go install github.com/distribution/distribution/v3/cmd/registry@$(REGISTRY3_VERSION)
	@rm -f $(TOOLS)/.registry-* && touch $@

$(KUBE_STAMP): scripts/build-kube.sh
	scripts/build-kube.sh $(TOOLS) $(ETCD_VERSION) $(KUBE_VERSION)
	@rm -f $(TOOLS)/.kube-* && touch $@

$(KUBECTL_STAMP): $(KUBE_STAMP)
	scripts/build-kube.sh $(TOOLS) $(ETCD_VERSION) $(KUBE_VERSION) kubectl
	@rm -f $(TOOLS)/.kubectl-* && touch $@

install: build
	install -Dm755 $(OPM) $(DESTDIR)$(PREFIX)/bin/opm
	$(OPM) man $(SHARE)/man/man1
	mkdir -p $(SHARE)/bash-completion/completions $(SHARE)/zsh/site-functions $(SHARE)/fish/vendor_completions.d
	$(OPM) completion bash >$(SHARE)/bash-completion/completions/opm
	$(OPM) completion zsh >$(SHARE)/zsh/site-functions/_opm
	$(OPM) completion fish >$(SHARE)/fish/vendor_completions.d/opm.fish
	install -Dm644 LICENSE $(SHARE)/licenses/opm/LICENSE
	scripts/third-party-notices.py $(HOST) >$(SHARE)/licenses/opm/THIRD-PARTY-NOTICES

clean:
	cargo clean
	rm -rf tools
