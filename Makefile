# molt's build. `make demo` and `make test` are the README's two commands.
GO      ?= go
BIN     ?= $(CURDIR)/bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
IMAGE   ?= molt
# The image's OCI labels: where its source is and which commit it is.
SOURCE  ?= https://github.com/molt-dev/molt
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)

.PHONY: all build demo test vet fmt-check race reliability bench bench-tools gobench fuzz image clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/molt ./cmd/molt
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/hello ./testdata/apps/hello

# The walkthrough: v1, a rolling v2, a revert (instant rollback), a failing
# v3 (automatic rollback), then down. Everything lives in a temporary
# directory and on 127.0.0.1.
demo: build
	BIN=$(BIN) bash testdata/demo/demo.sh

# vet, formatting, then every test with the race detector (the CLI scripts
# under cmd/molt/testdata/script run as part of `go test`), the crash and
# fault tests last, with their figures printed.
test: vet fmt-check race reliability

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# The reliability tests run apart (below), so that their figures are shown.
RELIABILITY = ^(TestCrashAtEveryPoint|TestRandomKills|TestFaultsUnderLoad)$$
race:
	$(GO) test -race -count=1 -timeout 20m -skip '$(RELIABILITY)' ./...

# Crash at every crash point under each strategy, 30 random kills of serve,
# every fault of the fault-injecting target under load: the figures (points
# x strategies, kills, requests, failures, faults) are the lines printed.
reliability:
	@mkdir -p $(BIN); rc=0; \
	$(GO) test -race -count=1 -timeout 15m -v -run '$(RELIABILITY)' ./cmd/molt ./targets/faults >$(BIN)/reliability.log 2>&1 || rc=$$?; \
	$(GO) test -race -count=1 -v -run '^TestFault' ./reconciler >>$(BIN)/reliability.log 2>&1 || rc=$$?; \
	grep -E '^(crash points|random kills|faults injected)|^(--- FAIL|FAIL|ok|panic)' $(BIN)/reliability.log; \
	if [ $$rc -ne 0 ]; then echo "== the reliability tests failed; the end of $(BIN)/reliability.log:"; tail -200 $(BIN)/reliability.log; fi; \
	exit $$rc

# Benchmarks are run by hand, never in CI. `make bench` runs every
# comparison of molt with what a user would otherwise run (nginx, cue vet,
# git clone) or with the ideal, both sides in the same run, alternating,
# BENCH_ROUNDS rounds, and writes bench/RESULTS.md (4 to 7 minutes on 2
# cores). It needs nginx, wrk and the cue CLI: `make bench-tools` installs
# them (Debian's packages, and cue into bin/tools); `.ci/run bench` does
# both. `make gobench` runs every Go benchmark of the tree.
BENCH_ROUNDS ?= 5
bench:
	PATH="$(BIN)/tools:$$PATH" $(GO) run ./bench -rounds $(BENCH_ROUNDS) -out bench/RESULTS.md

bench-tools:
	bash .ci/bench-tools

gobench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# Fuzzing: each target of FUZZ_TARGETS (package:FuzzName) in turn, for
# FUZZTIME each (CI runs the default; longer by hand: make fuzz
# FUZZTIME=10m). Their seed corpora, PKG/testdata/fuzz/FuzzName, run as
# ordinary tests in `make test`; an input that fails is written there.
# .ci/fuzz runs one target, and once more when Go 1.26's coordinator ends
# it on its own deadline race (go.dev/issue/75804) with no failing input.
FUZZTIME ?= 30s
# How long each new interesting input is minimized (Go's default, 60s,
# can take a whole FUZZTIME on the large webhook bodies).
FUZZMINIMIZETIME ?= 5s
FUZZ_TARGETS = \
	sources/github:FuzzVerifySignature \
	sources/github:FuzzParseEvent \
	sources/github:FuzzReceiver \
	sources/github:FuzzPlanComment \
	sources/github:FuzzOutcomeComment \
	schema:FuzzLoad \
	schema:FuzzLeanSchema \
	reconciler:FuzzPlanRender \
	targets/router:FuzzAdmin \
	targets/router:FuzzLane
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t#*:}; \
		echo "== $$name ./$$pkg for $(FUZZTIME)"; \
		GO=$(GO) bash .ci/fuzz $$pkg $$name $(FUZZTIME) $(FUZZMINIMIZETIME); \
	done

# molt's own image, FROM scratch, from a static binary built here (no pull).
# bin/image is the build context: the binary, the CA bundle, and the
# directories the image needs with their modes (scratch has no shell to make
# them in; see Dockerfile): /tmp 1777, and /var/lib/molt 0700 for the user.
IMAGE_DIR = $(BIN)/image
image:
	rm -rf $(IMAGE_DIR)
	mkdir -p $(IMAGE_DIR)/rootfs/tmp $(IMAGE_DIR)/rootfs/var/lib $(IMAGE_DIR)/varlib/molt
	chmod 0755 $(IMAGE_DIR) $(IMAGE_DIR)/rootfs $(IMAGE_DIR)/rootfs/var $(IMAGE_DIR)/rootfs/var/lib $(IMAGE_DIR)/varlib
	chmod 1777 $(IMAGE_DIR)/rootfs/tmp
	chmod 0700 $(IMAGE_DIR)/varlib/molt
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(IMAGE_DIR)/molt ./cmd/molt
	cp /etc/ssl/certs/ca-certificates.crt $(IMAGE_DIR)/ca-certificates.crt
	chmod 0755 $(IMAGE_DIR)/molt
	chmod 0644 $(IMAGE_DIR)/ca-certificates.crt
	docker build -t $(IMAGE):$(VERSION) -t $(IMAGE):latest \
		--build-arg VERSION='$(VERSION)' --build-arg REVISION='$(REVISION)' --build-arg SOURCE='$(SOURCE)' \
		-f Dockerfile $(IMAGE_DIR)

clean:
	rm -rf $(BIN)
