# The mmhub image: one image for the worker, the Postgres sink and the CLI (docker-compose.yml runs it).
FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY streams ./streams
COPY connectors ./connectors
COPY mmhub ./mmhub
COPY examples ./examples
RUN pip install --no-cache-dir . && useradd --create-home mmhub && mkdir -p /data && chown mmhub /data
USER mmhub
ENV MMHUB_DATA_DIR=/data
ENTRYPOINT ["mmhub"]
CMD ["--help"]
