"""The HTTP ingestion gateway: carriers POST signed batches in any supported format (see connectors.gateway.app)."""
