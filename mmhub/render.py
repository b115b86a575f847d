"""Human-readable views of a shipment record for the terminal."""

from __future__ import annotations

from datetime import datetime

from schemas.identifiers import TransportMode
from schemas.record import ShipmentRecord


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%MZ") if at else "-"


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return lines


def summary(record: ShipmentRecord) -> str:
    out = [f"Shipment {record.shipment_id}  (version {record.version}, status {record.status.upper()})"]
    if record.booking is None:
        out.append(f"  awaiting the booking; {len(record.awaiting_placement)} event(s) held until it arrives")
        return "\n".join(out)
    booking = record.booking
    cargo = booking.cargo
    out += [
        f"  Responsible operator (MTO): {record.responsible_operator}",
        f"  Shipper:   {booking.shipper.name} ({booking.shipper.party_id})",
        f"  Consignee: {booking.consignee.name} ({booking.consignee.party_id})",
        f"  Cargo:     {cargo.description}; {cargo.pieces} pieces, {cargo.gross_weight_kg} kg,"
        f" containers {', '.join(cargo.containers) or '-'}",
        f"  Declared value: {booking.declared_value.amount} {booking.declared_value.currency}",
        f"  Through document: "
        + (
            f"{record.through_document.number} ({record.through_document.kind}, by {record.through_document.issuer})"
            if record.through_document
            else "not yet issued"
        ),
        f"  Current location: {record.current_location or '-'}  (per {record.location_set_by or '-'})",
        "",
    ]
    rows = [["leg", "mode", "carrier", "route", "status", "departed", "arrived", "document"]]
    for leg in record.legs:
        rows.append(
            [
                str(leg.sequence),
                TransportMode(leg.mode).name.lower(),
                leg.carrier,
                f"{leg.origin}->{leg.destination}",
                leg.status,
                _when(leg.departure.actual),
                _when(leg.arrival.actual),
                ", ".join(f"{d.kind} {d.number}" for d in leg.documents) or "-",
            ]
        )
    out += ["  " + line for line in _table(rows)]
    exceptions = [(leg.sequence, m) for leg in record.legs for m in leg.exceptions]
    if exceptions:
        out += ["", "  Exceptions:"]
        out += [f"    leg {seq}: {m.status} at {m.location or '-'} {_when(m.at)} ({m.raw_code})" for seq, m in exceptions]
    charges = [["leg", "carrier", "code", "amount"]]
    for charge in record.journey_charges:
        charges.append(["all", charge.carrier, charge.code, f"{charge.amount.amount} {charge.amount.currency}"])
    for leg in record.legs:
        for charge in leg.charges:
            charges.append([str(leg.sequence), charge.carrier, charge.code, f"{charge.amount.amount} {charge.amount.currency}"])
    if len(charges) > 1:
        out += ["", "  Charges:"] + ["    " + line for line in _table(charges)]
        out.append("    total: " + ", ".join(f"{m.amount} {m.currency}" for m in record.charges_total))
    policy = record.insurance.policy
    out += [
        "",
        "  Insurance: "
        + (
            f"policy {policy.policy_number} by {policy.insurer}, {policy.insured_value.amount}"
            f" {policy.insured_value.currency}, {policy.conditions}"
            if policy
            else "none"
        ),
    ]
    for claim in record.insurance.claims:
        out.append(f"    claim {claim.claim_id}: {claim.status}")
    out.append(
        f"  Events applied: {record.events_applied} (retracted: {record.retracted_events},"
        f" awaiting placement: {len(record.awaiting_placement)})"
    )
    return "\n".join(out)
