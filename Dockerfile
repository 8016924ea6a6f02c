# syntax=docker/dockerfile:1
#
# SnowSignal container image: one static binary on an empty root file
# system. Build from the repository root:
#
#   docker build -t snowsignal:$(git describe --tags --always --dirty) \
#     --build-arg VERSION=$(git describe --tags --always --dirty) \
#     --build-arg COMMIT=$(git rev-parse --short HEAD) .
#
# The relay opens AF_PACKET sockets, so the container needs CAP_NET_RAW and
# nothing else: `--cap-drop ALL --cap-add NET_RAW`. docs/DEPLOYMENT.md has
# the run, Swarm, Kubernetes and systemd recipes. test/container_test.go
# checks this file and builds the binary exactly as below.

FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
# CGO_ENABLED=0: a static binary that needs no libc in the final image, and
# Go's own DNS resolver, which reads the /etc/resolv.conf Docker provides.
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$VERSION -X main.commit=$COMMIT" -o /out/snowsignal ./cmd/snowsignal
# scratch has no shell to create folders at run time: make the stats
# socket's folder (/run/snowsignal/snowsignal.sock, which `snowsignal
# health` reads) here and copy it. Mount a tmpfs there when the root file
# system is read-only.
RUN mkdir -p /out/run/snowsignal && chmod 0755 /out/run/snowsignal

FROM scratch
COPY --from=build /out/snowsignal /snowsignal
COPY --from=build /out/run/ /run/
# Root inside the container, but with every capability dropped except
# NET_RAW (see the compose and Kubernetes files): a non-root user cannot
# open raw sockets without file capabilities, which scratch cannot set.
ENTRYPOINT ["/snowsignal"]
CMD ["run"]
# The relay itself answers: the health command asks the running relay over
# its stats socket whether its stages run and its capture is up.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 CMD ["/snowsignal", "health"]
