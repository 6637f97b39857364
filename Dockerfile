# syntax=docker/dockerfile:1
#
# The lobster-relay server image: the static (musl) binary, CA certificates,
# an /etc/passwd naming the relay's user, and /data. No base image (nothing
# to pull), no shell, no package manager, no libc: ~18 MB in all.
#
#   cargo build --locked --profile dist --target x86_64-unknown-linux-musl -p lobster-relay
#   scripts/stage-image.sh       # copies the binary, CA bundle, passwd into target/image/
#   docker build -t lobster-relay .
#   docker run -p 8080:8080 -v lobster-data:/data \
#     -e WEBHOOK_SECRET=whsec_... -e RELAY_PUBLIC_URL=https://relay.example.com lobster-relay
#
# (or `buildah bud --storage-driver vfs --format docker -t lobster-relay .`).
# The build context is target/image/ alone (.dockerignore); IMAGE_FILES
# names a folder inside it staged the same way, e.g. for an arm64 image:
#   scripts/stage-image.sh BIN --out target/image/arm64   (an aarch64 musl build)
#   docker build --platform linux/arm64 --build-arg IMAGE_FILES=target/image/arm64 .
# scripts/test-image.sh builds the image and runs it; docs/install.md and
# docs/deployment.md describe the rest.

FROM scratch
ARG IMAGE_FILES=target/image
COPY ${IMAGE_FILES}/passwd ${IMAGE_FILES}/group /etc/
COPY ${IMAGE_FILES}/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
# /data, empty, mode 0700, owned by the relay's user (copied as the
# content of volume/ so that its mode is kept). A named volume mounted there
# starts as a copy of it, owner included: the relay (uid 65532) can write
# its database and admin token.
COPY --chown=65532:65532 ${IMAGE_FILES}/volume/ /
COPY ${IMAGE_FILES}/lobster-relay /usr/local/bin/lobster-relay
ENV PATH=/usr/local/bin \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    RELAY_LISTEN=0.0.0.0:8080 \
    RELAY_DATA_DIR=/data \
    RELAY_LOG_FORMAT=json
VOLUME /data
EXPOSE 8080
USER 65532:65532
# Exec form: the image has no shell. `healthcheck` GETs
# http://127.0.0.1:8080/readyz (storage and Redis reachable) and exits 0 on
# a 2xx answer; pass --url if RELAY_LISTEN moves off port 8080 or the relay
# serves TLS itself.
HEALTHCHECK --interval=15s --timeout=6s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/lobster-relay", "healthcheck"]
ENTRYPOINT ["lobster-relay"]
CMD ["server"]
