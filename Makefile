# nfpipe: `make demo` runs the built-in demo, `make test` runs every test.
GO ?= go
BIN := bin/nfpipe

.PHONY: all build demo test test-short fuzz deps vet bench bench-quick clean

all: build

# A static binary (no cgo: nothing needs it): every function is a process
# of it, and without libc mapped each one is ~1.5 MB smaller in memory.
build:
	CGO_ENABLED=0 $(GO) build -o $(BIN) ./cmd/nfpipe

# The main job on a built-in default: hosts and a router as separate
# processes, two-way over unix sockets and one-way over pipes; then the
# built-in quickstart chain (client -> nat -> firewall -> server).
demo: build
	./$(BIN) demo
	./$(BIN) chain up

deps:
	./scripts/install-deps.sh

vet:
	test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

# Everything CI runs: install test tools, vet, then all tests with the race
# detector (root-only tests run when root and skip with a reason otherwise).
# A package still running after 8 minutes fails with the names of its
# running tests printed last (scripts/test.sh).
test: deps vet
	GO=$(GO) ./scripts/test.sh

test-short:
	$(GO) test -short -count=1 ./...

# Run each fuzz target for a while (FUZZTIME=30s by default).
FUZZTIME ?= 30s
fuzz:
	for t in $$($(GO) test -list 'Fuzz.*' ./netstack/frame/ | grep ^Fuzz); do \
		$(GO) test -run='^$$' -fuzz="^$$t$$" -fuzztime=$(FUZZTIME) ./netstack/frame/ || exit 1; \
	done

# Benchmarks against the kernel, a bare frame copier, slirp4netns and pasta
# (root: network namespaces). bench-quick is for development: under 2
# minutes, indicative numbers only.
bench:
	$(GO) run ./bench

bench-quick:
	$(GO) run ./bench --quick

clean:
	rm -rf bin
