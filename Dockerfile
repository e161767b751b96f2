# hoptrace service image: `docker build -t hoptrace .`
#   docker run -p 8080:8080 -v hoptrace-data:/var/lib/hoptrace \
#     -v $PWD/my-config:/etc/hoptrace:ro hoptrace
# The runtime install steps live in scripts/setup, which CI runs too (.ci/run -> scripts/test).

FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY benches benches
RUN cargo build --release --locked

FROM debian:bookworm-slim
COPY scripts/setup /usr/local/lib/hoptrace/setup
RUN /usr/local/lib/hoptrace/setup runtime \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/hoptrace --shell /usr/sbin/nologin hoptrace \
    && mkdir -p /var/lib/hoptrace /etc/hoptrace \
    && chown hoptrace:hoptrace /var/lib/hoptrace
COPY --from=build /src/target/release/hoptrace /usr/local/bin/hoptrace
COPY resolver-config/ /etc/hoptrace/
# In the image the store lives in the volume and the service listens on every interface,
# which needs server.api_tokens (without tokens hoptrace serves loopback only and refuses to
# start): mount a config that sets them, as in the example above.
RUN sed -i \
      -e 's|^path = .*|path = "/var/lib/hoptrace"|' \
      -e 's|^listen = .*|listen = "0.0.0.0:8080"|' \
      /etc/hoptrace/hoptrace.toml
USER hoptrace
WORKDIR /var/lib/hoptrace
VOLUME ["/var/lib/hoptrace"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=6s --start-period=10s --retries=3 \
  CMD ["hoptrace", "health", "--server", "127.0.0.1:8080"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["hoptrace"]
CMD ["serve", "--config", "/etc/hoptrace/hoptrace.toml"]
