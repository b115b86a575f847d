"""A generated carrier-performance log, and what releasing the performance data set over it costs.

    python -m bench.datasets [--shipments 2000 --seed 1 --out FILE]

`performance_log` builds canonical events for many shipments over a few multimodal routes, six months, sixty
shippers and the demo carriers: a booking per shipment, each leg's departure and arrival (mostly on time, some
late), the handovers between legs (a few with a package short), and damage reports on a few legs (each opens a
claim with its liability in SDR). Route weights make some cells large and some small, and one rare route has only
two shippers, so a release has cells to suppress under k and under m. Seeded: the same arguments give the same bytes.

Run as a module it writes the log (--out) and reports the offline fold and the release's time and cell counts.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson

from bench.workload import AUTHORITY
from schemas.identifiers import iso6346_check_digit
from streams.codec import Rejection, decode_event
from streams.datasets import DatasetPolicy, cells, release
from streams.merge import fold

MTO = "mto.westcorridor"
ROAD, RAIL, SEA = 3, 2, 1  # UN/ECE Recommendation 19 mode codes
# (origin, destination, mode, carrier, planned hours)
Leg = tuple[str, str, int, str, int]
ROUTES: list[tuple[float, list[Leg], int]] = [  # weight, legs, number of shippers that use it
    (0.50, [("CNCTU", "CNCKG", ROAD, "carrier.sc-road", 8), ("CNCKG", "CNQZH", RAIL, "carrier.cr-rail", 48),
            ("CNQZH", "SGSIN", SEA, "carrier.oceanline", 120), ("SGSIN", "MYJHB", ROAD, "carrier.my-haulage", 6)], 60),
    (0.25, [("CNCKG", "CNQZH", RAIL, "carrier.cr-rail", 48), ("CNQZH", "SGSIN", SEA, "carrier.oceanline", 120)], 40),
    (0.15, [("CNCTU", "CNCKG", ROAD, "carrier.sc-road", 8), ("CNCKG", "CNSHA", RAIL, "carrier.cr-rail", 60),
            ("CNSHA", "SGSIN", SEA, "carrier.oceanline", 140)], 30),
    (0.08, [("CNSHA", "SGSIN", SEA, "carrier.oceanline", 140), ("SGSIN", "MYJHB", ROAD, "carrier.my-haulage", 6)], 20),
    (0.02, [("CNSHA", "CNQZH", SEA, "carrier.oceanline", 30)], 2),  # rare, and only two shippers: suppressed
]  # fmt: skip
FIRST_MONTH = datetime(2026, 1, 1, 1, tzinfo=timezone.utc)
MONTHS = 6
LATE_SHARE = 0.2
DAMAGE_SHARE = 0.02
SHORT_SHARE = 0.01
PACKAGES = 20


def _at(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def event(event_id: str, source: str, kind: str, shipment: str, at: datetime, payload: dict[str, Any]) -> bytes:
    return orjson.dumps(
        {
            "event_id": event_id,
            "source": source,
            "event_type": kind,
            "shipment_id": shipment,
            "occurred_at": _at(at),
            "recorded_at": _at(at + timedelta(minutes=3)),
            "classifier": "ACT",
            "payload": payload,
        }
    )


def container_number(index: int) -> str:
    first_ten = f"PFMU{index % 1_000_000:06d}"
    return f"{first_ten}{iso6346_check_digit(first_ten)}"


def performance_log(shipments: int = 2000, seed: int = 1, first: int = 0) -> list[bytes]:
    """The log's events, shipments numbered from `first` (SHP-2027-<number>)."""
    rng = random.Random(seed)
    weights = [weight for weight, _, _ in ROUTES]
    lines: list[bytes] = []
    for index in range(shipments):
        _, legs, shippers = rng.choices(ROUTES, weights)[0]
        route = ROUTES.index(next(r for r in ROUTES if r[1] is legs))
        shipper = f"shipper.r{route}-s{rng.randrange(shippers):02d}"
        shipment = f"SHP-2027-{first + index:06d}"
        container = container_number(index)
        start = FIRST_MONTH + timedelta(days=rng.randrange(MONTHS * 30), hours=rng.randrange(24))
        planned: list[tuple[datetime, datetime]] = []
        moment = start
        for *_, hours in legs:
            planned.append((moment, moment + timedelta(hours=hours)))
            moment += timedelta(hours=hours + 6)
        weight = "8400.000"
        lines.append(event("bkg", MTO, "booking", shipment, start - timedelta(days=2), {
            "shipper": {"party_id": shipper, "name": f"Shipper {shipper}"},
            "consignee": {"party_id": "consignee.johor-assembly", "name": "Johor Assembly Sdn Bhd"},
            "mto": MTO,
            "cargo": {"description": "General cargo, palletised", "pieces": PACKAGES, "packages": PACKAGES,
                      "gross_weight_kg": weight, "volume_m3": "31.500", "containers": [container]},
            "declared_value": {"amount": "100000.00", "currency": "USD"},
            "legs": [{"sequence": n, "mode": mode, "carrier": carrier, "origin": origin, "destination": destination,
                      "planned_departure": _at(dep), "planned_arrival": _at(arr)}
                     for n, ((origin, destination, mode, carrier, _), (dep, arr)) in enumerate(zip(legs, planned), 1)],
            "requested_delivery": _at(planned[-1][1] + timedelta(hours=12)),
        }))  # fmt: skip
        packages = PACKAGES
        for n, ((origin, destination, _, carrier, _), (dep, arr)) in enumerate(zip(legs, planned), 1):
            departed = dep + timedelta(minutes=rng.randrange(0, 90))
            arrived = arr + timedelta(hours=rng.uniform(1, 30)) if rng.random() < LATE_SHARE else arr - timedelta(
                minutes=rng.randrange(0, 120)
            )
            status = {"raw_code": "X", "code_list": carrier.split(".")[1], "leg": n, "container": container}
            if n == 1:
                lines.append(event("ho-0", carrier, "handover", shipment, departed - timedelta(hours=1), {
                    "from_leg": None, "to_leg": 1, "location": origin, "packages": packages, "gross_weight_kg": weight,
                }))  # fmt: skip
            lines.append(event(f"L{n}-dep", carrier, "tracking", shipment, departed,
                                {**status, "status": "departed", "location": origin}))  # fmt: skip
            if rng.random() < DAMAGE_SHARE:
                lines.append(event(f"L{n}-dmg", carrier, "tracking", shipment, departed + (arrived - departed) / 2, {
                    **status, "status": "damaged", "location": origin, "remarks": "Pallets damaged in transit",
                    "affected_packages": 2, "affected_weight_kg": "840.000",
                }))  # fmt: skip
            last = n == len(legs)
            lines.append(event(f"L{n}-arr", carrier, "tracking", shipment, arrived,
                                {**status, "status": "delivered" if last else "arrived", "location": destination}))
            if rng.random() < SHORT_SHARE:
                packages -= 1
            next_carrier = carrier if last else legs[n][3]
            lines.append(event(f"ho-{n}", next_carrier, "handover", shipment,
                                arrived + timedelta(hours=rng.uniform(0.5, 12)), {
                "from_leg": n, "to_leg": None if last else n + 1, "location": destination, "packages": packages,
                "gross_weight_kg": weight,
            }))  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.datasets", description=__doc__.split("\n\n")[0])
    parser.add_argument("--shipments", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, help="write the generated log here (JSON lines)")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--m", type=int, default=3)
    args = parser.parse_args(argv)
    lines = performance_log(args.shipments, args.seed)
    if args.out is not None:
        args.out.write_bytes(b"\n".join(lines) + b"\n")
        print(f"wrote {len(lines):,} events of {args.shipments:,} shipments to {args.out}")
    events = []
    for line in lines:
        decoded = decode_event(line)
        if isinstance(decoded, Rejection):
            raise SystemExit(f"generated event is invalid ({decoded.code}): {decoded.reason}")
        events.append(decoded)
    started = time.perf_counter()
    records = fold(events, AUTHORITY)
    folded = time.perf_counter()
    computed = cells(records.values())
    result = release(computed, DatasetPolicy(k=args.k, m=args.m))
    done = time.perf_counter()
    print(f"fold {len(events):,} events -> {len(records):,} records in {folded - started:.2f} s; "
          f"{len(computed)} cells computed, {len(result.cells)} released, {result.suppressed} suppressed, "
          f"in {(done - folded) * 1e3:.0f} ms")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
