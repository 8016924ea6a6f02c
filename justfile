# Daily commands. The README's two commands work without just.

# Build the static binary into ./snowsignal
build:
    CGO_ENABLED=0 go build -trimpath -ldflags "-X main.version=$(git describe --tags --always --dirty 2>/dev/null || echo dev) -X main.commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" -o snowsignal ./cmd/snowsignal

# Run the whole test suite (root: network namespaces)
test:
    go test -race -count=1 ./...

# Unit tests only (no root needed; namespace tests skip)
unit:
    go test -race -count=1 ./pipeline/... ./stages/... ./netio/... ./cmd/...

# Format, vet and run CI exactly as CI does
lint:
    test -z "$(gofmt -l $(git ls-files '*.go'))"
    go vet ./...

ci:
    bash .ci/run

# Show two relays at work in network namespaces (root)
demo:
    go run ./cmd/snowsignal demo

# Run the relay on an interface: just run eth0 --other-relays 10.0.0.2
run *ARGS:
    go run ./cmd/snowsignal run {{ARGS}}

# Fuzz one target for a while: just fuzz FuzzDecode ./netio/frame 60s
fuzz TARGET PKG TIME="60s":
    go test -run '^$' -fuzz '^{{TARGET}}$' -fuzztime {{TIME}} {{PKG}}

# Benchmark two relays against the direct path in namespaces and record the
# results in docs/BENCHMARKS.md (root): just bench, or just bench -quick
bench *ARGS:
    go run ./test/bench {{ARGS}}
