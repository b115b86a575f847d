"""UN/EDIFACT IFTSTA status reports: a pure parser from interchange bytes to canonical tracking events."""

from connectors.edifact.parse import parse

__all__ = ["parse"]
