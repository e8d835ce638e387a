# lagwatch: build a wheel with its dependencies in one stage, run it from a clean slim image.
#   docker build -t lagwatch .
#   docker run -p 9391:9391 -v "$PWD/lagwatch.yaml:/etc/lagwatch/lagwatch.yaml:ro" lagwatch

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY lagwatch ./lagwatch
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="lagwatch" \
      org.opencontainers.image.description="Kafka consumer-lag and health monitor"
RUN groupadd --system --gid 10001 lagwatch \
    && useradd --system --uid 10001 --gid lagwatch --home-dir /var/lib/lagwatch \
       --shell /usr/sbin/nologin lagwatch \
    && mkdir -p /etc/lagwatch /var/lib/lagwatch \
    && chown lagwatch:lagwatch /var/lib/lagwatch
COPY --from=build /install /usr/local
USER 10001:10001
VOLUME ["/var/lib/lagwatch"]
EXPOSE 9391
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request, sys; urllib.request.urlopen('http://127.0.0.1:9391/healthz', timeout=4); sys.exit(0)"]
ENTRYPOINT ["lagwatch"]
CMD ["run", "-c", "/etc/lagwatch/lagwatch.yaml", "--listen", "0.0.0.0:9391", "--state-dir", "/var/lib/lagwatch"]
