# syntax=docker/dockerfile:1
# Portcullis as a container image: built with the Rust toolchain, run as an
# unprivileged user on a minimal Debian base. See docs/deployment.md.
#
#   docker build -t portcullis .
#   docker run -p 8000:8000 -v portcullis-data:/var/lib/portcullis/data portcullis

FROM rust:1.95-slim-bookworm AS build
# make: jemalloc, the binary's allocator, is built from its C sources with
# make (the slim image has gcc but no make).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so a source change does not rebuild them.
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
COPY migrations ./migrations
RUN cargo build --release --locked -p portcullis \
    && install -m 0755 target/release/portcullis /usr/local/bin/portcullis

FROM debian:bookworm-slim
# ca-certificates: the platform roots for PostgreSQL (sslmode=verify-full
# without sslrootcert), rediss:// and the OAuth providers.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/portcullis --create-home --shell /usr/sbin/nologin portcullis \
    && install -d -o portcullis -g portcullis -m 0700 /var/lib/portcullis/data
COPY --from=build /usr/local/bin/portcullis /usr/local/bin/portcullis

USER 10001:10001
WORKDIR /var/lib/portcullis
# Settings only: every secret comes from a file (AUTH_*_FILE, DATABASE_URL_FILE)
# or the orchestrator's environment, never from the image.
ENV AUTH_BIND=0.0.0.0:8000 \
    AUTH_ENV=production \
    AUTH_LOG_FORMAT=json \
    DATABASE_URL=sqlite:///var/lib/portcullis/data/portcullis.db
VOLUME ["/var/lib/portcullis/data"]
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["portcullis", "healthcheck"]
ENTRYPOINT ["portcullis"]
CMD ["serve"]
