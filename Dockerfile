# syntax=docker/dockerfile:1.7
#
# canaryline step image: the static multi-call binary cmd/canaryline-steps,
# one symlink per step, a CA bundle, passwd/group with the non-root user
# canaryline (uid 65532, gid 0), /tmp and a group-0-writable home, on scratch.
#
# This is the container-engine route to the same image that
# internal/tools/image.Build (`canaryline image --out DIR`) writes as an OCI layout
# without an engine; internal/tools/image's TestDockerfileMatchesImage keeps the
# two in step. Build with BuildKit (Docker 23+) or Podman/Buildah:
#
#   docker build -t canaryline-steps:dev .
#   docker build --platform linux/arm64 --build-arg VERSION=v0.1.0 \
#     --build-arg REVISION=$(git rev-parse HEAD) -t canaryline-steps:v0.1.0 .

ARG GO_IMAGE=docker.io/library/golang:1.26-bookworm

FROM --platform=$BUILDPLATFORM ${GO_IMAGE} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .

# Cross-compile for the target platform on the build platform.
ARG TARGETOS=linux
ARG TARGETARCH=amd64
ARG TARGETVARIANT
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    case "$TARGETARCH" in arm) export GOARM="${TARGETVARIANT#v}" ;; esac; \
    CGO_ENABLED=0 GOOS="$TARGETOS" GOARCH="$TARGETARCH" \
    go build -trimpath -ldflags='-s -w -buildid=' -o /out/canaryline-steps ./cmd/canaryline-steps

# Lay out the image's file system. The step names come from the binary's own
# table (built for the build platform, so this works when cross-compiling).
# The home directory is staged apart so that the final stage can copy it with
# its own owner.
ARG SOURCE_DATE_EPOCH=0
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    set -eu; \
    steps="$(CGO_ENABLED=0 go run ./cmd/canaryline-steps --list)"; \
    test -n "$steps"; \
    mkdir -p /rootfs/etc/ssl/certs /rootfs/usr/local/bin /rootfs/tmp /rootfs/home /rootfs-home/canaryline; \
    install -m 0555 /out/canaryline-steps /rootfs/usr/local/bin/canaryline-steps; \
    for step in $steps; do ln -s canaryline-steps "/rootfs/usr/local/bin/$step"; done; \
    install -m 0644 /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ca-certificates.crt; \
    printf '%s\n' \
      'root:x:0:0:root:/root:/sbin/nologin' \
      'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
      'canaryline:x:65532:0:canaryline:/home/canaryline:/sbin/nologin' \
      > /rootfs/etc/passwd; \
    printf '%s\n' \
      'root:x:0:' \
      'nobody:x:65534:' \
      > /rootfs/etc/group; \
    chmod 0644 /rootfs/etc/passwd /rootfs/etc/group; \
    find /rootfs -type d -exec chmod 0755 {} +; \
    chmod 1777 /rootfs/tmp; \
    chmod 0775 /rootfs-home/canaryline; \
    chown -R 0:0 /rootfs; \
    chown 65532:0 /rootfs-home/canaryline; \
    find /rootfs /rootfs-home -exec touch -h -d "@${SOURCE_DATE_EPOCH}" {} +

FROM scratch
COPY --from=build --chown=0:0 /rootfs/ /
# Owned by 65532 and writable by group 0: OpenShift's restricted SCCs run an
# arbitrary UID whose group is always 0.
COPY --from=build --chown=65532:0 --chmod=0775 /rootfs-home/ /home/

ARG VERSION=dev
ARG REVISION=
ARG SOURCE=https://github.com/canaryline/canaryline
LABEL org.opencontainers.image.title="canaryline-steps" \
      org.opencontainers.image.description="canaryline Tekton step commands (start-build, wait-build, shift-canary, verify-health, promote-or-rollback) in one multi-call binary" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PATH=/usr/local/bin:/usr/bin:/bin \
    HOME=/home/canaryline \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
WORKDIR /home/canaryline
# Numeric, so that runAsNonRoot can be verified without /etc/passwd; no
# group, so that OpenShift may substitute an arbitrary UID (with gid 0).
USER 65532
ENTRYPOINT ["/usr/local/bin/canaryline-steps"]
