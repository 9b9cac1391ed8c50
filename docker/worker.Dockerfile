# The dgpu-release worker and starter, as static binaries on UBI micro.
# Runs as any non-root UID (OpenShift assigns one); needs git for the local forge only.
FROM registry.access.redhat.com/ubi9/go-toolset:latest AS build
USER 0
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/worker ./worker \
 && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/starter ./starter

FROM registry.access.redhat.com/ubi9/ubi-micro:latest
COPY --from=build /out/worker /out/starter /usr/local/bin/
COPY LICENSE* /licenses/
# A writable home for the state folder and docker credentials, whatever UID runs us.
RUN mkdir -p /var/lib/dgpu-release && chgrp -R 0 /var/lib/dgpu-release && chmod -R g=u /var/lib/dgpu-release
ENV HOME=/var/lib/dgpu-release DGPU_STATE_DIR=/var/lib/dgpu-release/state
USER 1001
LABEL name="dgpu-release-worker" \
      vendor="Intel Corporation" \
      version="0.1.0" \
      release="1" \
      maintainer="Intel Data Center GPU driver team" \
      summary="Release automation for the Intel Data Center GPU driver images on OpenShift" \
      description="Temporal worker that builds, tests, certifies and publishes Intel Data Center GPU driver container images for OpenShift kernels"
ENTRYPOINT ["/usr/local/bin/worker"]
