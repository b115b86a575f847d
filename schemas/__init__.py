"""Canonical mmhub data: identifiers, money, event envelopes and the merged shipment record.

Pure pydantic: nothing in this package does I/O, so every other package may import it.
"""
