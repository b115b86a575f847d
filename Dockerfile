# The mmhub images (docker-compose.yml builds `production`).
#   production: the worker, sink, sharing stage, gateway, webhooks and CLI. No examples/: no demo registry,
#               reader tokens or signing keys; point MMHUB_CARRIERS and MMHUB_PARTIES at your own registry, and
#               give credentials through the environment or secret files (MMHUB_KAFKA_PASSWORD_FILE,
#               MMHUB_PG_PASSWORD_FILE).
#   demo:       production plus examples/, for `mmhub demo` only (`docker build --target demo .`).
FROM python:3.11-slim AS production

WORKDIR /app
COPY pyproject.toml README.md ./
COPY hubconf ./hubconf
COPY schemas ./schemas
COPY streams ./streams
COPY runtime ./runtime
COPY connectors ./connectors
COPY worker ./worker
COPY mmhub ./mmhub
RUN pip install --no-cache-dir . && useradd --create-home mmhub && mkdir -p /data && chown mmhub /data
USER mmhub
ENV MMHUB_DATA_DIR=/data
ENTRYPOINT ["mmhub"]
CMD ["--help"]

FROM production AS demo
COPY examples ./examples
ENV MMHUB_CARRIERS=/app/examples/carriers.json MMHUB_PARTIES=/app/examples/parties.json
