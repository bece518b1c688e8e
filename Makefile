# molt's build. `make demo` and `make test` are the README's two commands.
GO      ?= go
BIN     ?= $(CURDIR)/bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
IMAGE   ?= molt
# The image's OCI labels: where its source is and which commit it is.
SOURCE  ?= https://github.com/molt-dev/molt
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)

.PHONY: all build demo test vet fmt-check race bench image clean

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
# under cmd/molt/testdata/script run as part of `go test`).
test: vet fmt-check race

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

race:
	$(GO) test -race -count=1 -timeout 20m ./...

# Benchmarks are run by hand, never in CI.
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

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
