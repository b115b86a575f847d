"""GS1 EPCIS 2.0 JSON-LD events: a pure parser from document bytes to canonical tracking events."""

from connectors.epcis.parse import parse

__all__ = ["parse"]
