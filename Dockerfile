# syntax=docker/dockerfile:1
#
# The feature store image: a static Go binary on distroless, running as the
# non-root user 65532. Build with the version it reports:
#
#   docker build --build-arg VERSION=1.2.3 --build-arg REVISION=$(git rev-parse HEAD) -t featurestore:1.2.3 .
#
# No shell, curl or wget in the final image: Kubernetes probes it over HTTP
# (deploy/kubernetes/deployment.yaml); for compose, see the README's "Why the
# featurestore compose service has no health check".

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
# Dependencies first: this layer is rebuilt only when go.mod or go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
ARG VERSION=dev
ARG REVISION=unknown
ARG TARGETOS
ARG TARGETARCH
# Pure Go (the SQLite driver is modernc.org/sqlite): CGO_ENABLED=0 gives a
# static binary that runs on a base with no libc.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath \
      -ldflags "-s -w -X github.com/featurestore/featurestore/internal/app.version=${VERSION} -X github.com/featurestore/featurestore/internal/app.revision=${REVISION}" \
      -o /out/featurestore ./cmd/featurestore \
 && mkdir -p /out/data

# static-debian12: CA certificates (TLS to Postgres and Redis), tzdata and
# /etc/passwd with the nonroot user (65532), nothing else.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/featurestore /usr/local/bin/featurestore
# The embedded store's directory (used only without FEATURESTORE_POSTGRES_URL):
# owned by the runtime user so a volume mounted here starts out writable.
COPY --from=build --chown=65532:65532 /out/data /var/lib/featurestore
ENV FEATURESTORE_DATA_DIR=/var/lib/featurestore
USER 65532:65532
EXPOSE 8001
ENTRYPOINT ["/usr/local/bin/featurestore"]
CMD ["serve"]
