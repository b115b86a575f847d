"""`mmhub invoice SHIPMENT --ubl`: the shipper's one invoice as an EN 16931 UBL 2.1 document, from a file of events
(folded offline, as `mmhub fold` does) or from the live Postgres projection."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import orjson

from hubconf.settings import Settings


def _record(args: argparse.Namespace, settings: Settings) -> Any:
    from connectors.kafka import read_jsonl
    from connectors.parties import load_parties
    from schemas.record import ShipmentRecord
    from streams.codec import Rejection, decode_event
    from streams.merge import fold
    from streams.references import resolve_offline

    if args.events is None:
        from connectors.postgres.store import fetch_record

        row = asyncio.run(fetch_record(settings, args.shipment))
        if row is None:
            return None
        row.pop("projected_at", None)
        return ShipmentRecord.model_validate_json(orjson.dumps(row))
    authority = load_parties(settings.parties_path).authority()
    decoded = [decode_event(line) for line in read_jsonl(Path(args.events))]
    events, _ = resolve_offline([e for e in decoded if not isinstance(e, Rejection)], authority)
    return fold(events, authority).get(args.shipment)


def _invoice(args: argparse.Namespace, settings: Settings) -> int:
    from connectors.parties import load_parties
    from connectors.ubl.write import NoInvoice, shipper_invoice, write

    record = _record(args, settings)
    if record is None:
        print(f"mmhub invoice: shipment {args.shipment} is not known", file=sys.stderr)
        return 1
    registry = load_parties(settings.parties_path)
    parties = {p.party_id: p.invoice_party() for p in registry.parties}
    try:
        invoice = shipper_invoice(record, parties, args.currency)
    except NoInvoice as error:
        print(f"mmhub invoice: {error}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(write(invoice, record.shipment_id))
    return 0


def add_invoice_commands(sub: Any) -> None:
    invoice = sub.add_parser("invoice", help="the shipper's invoice for a shipment as EN 16931 UBL")
    invoice.add_argument("shipment", help="the hub shipment id (SHP-...)")
    invoice.add_argument("--ubl", action="store_true", required=True, help="write UBL 2.1 (Peppol BIS Billing 3.0)")
    invoice.add_argument("--events", help="a JSON-lines event log to fold (default: the live Postgres projection)")
    invoice.add_argument("--currency", help="the invoice currency to write, when the invoice has several")
    invoice.set_defaults(run=_invoice)
