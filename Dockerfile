# syntax=docker/dockerfile:1
#
# The lobster-relay server image.
#
#   docker build -t lobster-relay .
#   docker run -p 8080:8080 -v lobster-data:/data \
#     -e WEBHOOK_SECRET=whsec_... -e RELAY_PUBLIC_URL=https://relay.example.com lobster-relay
#
# Builder: Debian bookworm with Rust; the cargo registry, git checkouts and
# target/ live in BuildKit cache mounts, so a rebuild after a source change
# recompiles only the workspace's own crates. Runtime: distroless (glibc,
# libgcc, CA certificates, no shell, no package manager) as the `nonroot`
# user (65532). Both are Debian 12, so the binary's glibc matches.
# docs/deployment.md describes the configuration.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p lobster-relay --bin lobster-relay \
 && install -D -m 0755 target/release/lobster-relay /out/lobster-relay \
 && install -d -m 0700 /out/data

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/lobster-relay /usr/local/bin/lobster-relay
# A named volume mounted here starts as a copy of this directory, owner
# included: the relay (uid 65532) can write its database and admin token.
COPY --from=builder --chown=65532:65532 /out/data /data
ENV RELAY_LISTEN=0.0.0.0:8080 \
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
