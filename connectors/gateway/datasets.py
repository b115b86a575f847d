"""`GET /v1/datasets/performance[?month=YYYY-MM&lane=ORIGIN-DESTINATION]`: the carrier performance data set.

Who reads what is the sharing policy's `datasets` part (streams.sharing.DatasetRules), by the reader's registry
role: an insurer reads for underwriting (k/m cells with Laplace noise, and the lane/carrier risk view), a lender for
lending (k/m cells with noise), a carrier its own cells unaggregated. Anyone else: 403.

A noisy release spends `epsilon_per_release` of the party's budget; one that repeats earlier figures (fewer than k
shipments changed in every cell, streams.datasets.release) spends nothing. In one Postgres transaction, serialised
per release kind: the budget is checked and debited (dataset_budget, dataset_debits), the cells' Published state
is updated (dataset_published), and the read is audited like every share (share_audit's hash chain and hub.audit,
shipment id `dataset:performance`, so `mmhub usage` meters it). If any of it fails, nothing goes out.

The monthly release (mmhub.dataset.publish_month) is cut the same way, once per month: DatasetStore.monthly keeps
its document in dataset_monthly in that transaction and hands it back, unchanged, to every later run.
"""

from __future__ import annotations

import random
import re
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Awaitable, Callable, Mapping

import asyncpg
import orjson
from aiohttp import web

from connectors.gateway.access import UNAUTHENTICATED
from connectors.gateway.guards import authorization
from connectors.gateway.intake import Publisher, Unavailable, error_document
from connectors.gateway.receipts import open_pool, pooled
from connectors.parties import PartyRegistry
from connectors.sharing.chain import append
from hubconf.settings import Settings
from schemas.record import ShipmentRecord
from streams.datasets import (
    CellKey, Published, Release, Released, cells, claim_risks, noise_scales, release, release_document, risk_view,
    select,
)  # fmt: skip
from streams.sharing import POLICY, DatasetPurpose, Policy, Share

DATASET = "performance"
SUBJECT = f"dataset:{DATASET}"  # the audit's shipment id for a data set read
MONTHLY = "hub.datasets"  # who the monthly release is audited as: the hub's own publication, not a party
MONTHLY_KIND = "monthly"  # its release kind (dataset_published), apart from the gateway's "noisy" and "own"
MONTH = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")
LANE = re.compile(r"^[A-Z]{2}[A-Z2-9]{3}-[A-Z]{2}[A-Z2-9]{3}$")


class BudgetExhausted(Exception):
    pass


@dataclass(frozen=True)
class ReleaseJob:
    """One release to cut: for whom (party, its budget), of which kind (the Published state it is sticky against),
    how (cut), how it is audited (audited, then publish for hub.audit) and when."""

    party: str
    budget: float
    kind: str
    cut: Callable[[Mapping[CellKey, Published]], Release]
    audited: Callable[[Release], Share]
    publish: Callable[[dict[str, Any]], Awaitable[None]]
    at: datetime


class DatasetStore:
    """The projection's records, the budgets, the Published state and the audit, on one pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, settings: Settings) -> DatasetStore:
        return cls(await open_pool(settings, "mmhub-gateway-datasets", 4))

    async def close(self) -> None:
        await self._pool.close()

    async def record(self, shipment_id: str) -> ShipmentRecord | None:
        row = await pooled(
            self._pool, lambda c: c.fetchrow("SELECT record FROM shipments WHERE shipment_id = $1", shipment_id)
        )
        return None if row is None else ShipmentRecord.model_validate_json(row["record"])

    async def published(self, kind: str) -> list[Released]:
        """What releases of `kind` last published, cell by cell (as stale cells: nothing new is drawn)."""
        rows = await pooled(
            self._pool,
            lambda c: c.fetch(
                "SELECT * FROM dataset_published WHERE dataset = $1 AND release_kind = $2"
                " ORDER BY origin, destination, mode, carrier, month",
                DATASET, kind,
            ),
        )  # fmt: skip
        return [
            Released(CellKey(r["origin"], r["destination"], r["mode"], r["carrier"], r["month"]),
                     orjson.loads(r["figures"]), True)
            for r in rows
        ]  # fmt: skip

    async def audit(self, share: Share, publish: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        """Audit one share (share_audit's chain, then hub.audit)."""

        async def run(conn: asyncpg.Connection) -> list[dict[str, Any]]:
            async with conn.transaction():
                return await append(conn, [share])

        for entry in await pooled(self._pool, run):
            await publish(entry)

    async def records(self) -> list[ShipmentRecord]:
        rows = await pooled(self._pool, lambda c: c.fetch("SELECT record FROM shipments ORDER BY shipment_id"))
        return [ShipmentRecord.model_validate_json(row["record"]) for row in rows]

    async def released(self, job: ReleaseJob) -> tuple[Release, float]:
        """Cut a release against the kind's Published state, debit what it spends, keep its state and audit it,
        all or nothing. Returns the release and what the party has spent of its budget since."""

        async def run(conn: asyncpg.Connection) -> tuple[Release, float]:
            async with conn.transaction():
                return await _released(conn, job)

        return await pooled(self._pool, run)

    async def monthly(
        self, month: str, job: ReleaseJob, document: Callable[[Release], dict[str, Any]]
    ) -> tuple[dict[str, Any], datetime | None]:
        """The month's release document and when it was sent (None: not yet). The first call cuts it (as `released`
        does; the job's party is MONTHLY, its kind MONTHLY_KIND), audits it and keeps it in dataset_monthly, in one
        transaction; every later call reads the kept document back and cuts, audits and debits nothing."""

        async def run(conn: asyncpg.Connection) -> tuple[dict[str, Any], datetime | None]:
            async with conn.transaction():
                await _lock(conn, job.kind)  # the same lock as the cut's: one publisher of a month at a time
                kept = await conn.fetchrow("SELECT document, sent_at FROM dataset_monthly WHERE month = $1", month)
                if kept is not None:
                    found: dict[str, Any] = orjson.loads(kept["document"])
                    return found, kept["sent_at"]
                out, _ = await _released(conn, job)
                made = document(out)
                await conn.execute(
                    "INSERT INTO dataset_monthly (month, document, published_at) VALUES ($1, $2, $3)",
                    month, orjson.dumps(made).decode(), job.at,
                )  # fmt: skip
                return made, None

        return await pooled(self._pool, run)

    async def sent(self, month: str, at: datetime) -> None:
        """Mark the month's kept release as sent to the monthly topic."""
        await pooled(
            self._pool,
            lambda c: c.execute(
                "UPDATE dataset_monthly SET sent_at = $2 WHERE month = $1 AND sent_at IS NULL", month, at
            ),
        )


async def _lock(conn: asyncpg.Connection, kind: str) -> None:
    """Serialise the releases of one kind (held until the transaction ends; a session may take it again)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"dataset:{DATASET}:{kind}")


async def _released(conn: asyncpg.Connection, job: ReleaseJob) -> tuple[Release, float]:
    """DatasetStore.released's work, inside the caller's transaction."""
    party, budget, kind, cut, audited, publish, at = (
        job.party, job.budget, job.kind, job.cut, job.audited, job.publish, job.at
    )  # fmt: skip
    await _lock(conn, kind)
    await conn.execute(
        "INSERT INTO dataset_budget (party, budget, spent, updated_at) VALUES ($1, $2, 0, $3)"
        " ON CONFLICT (party) DO NOTHING",
        party, budget, at,
    )  # fmt: skip
    row = await conn.fetchrow("SELECT budget, spent FROM dataset_budget WHERE party = $1 FOR UPDATE", party)
    assert row is not None
    previous = {
        CellKey(r["origin"], r["destination"], r["mode"], r["carrier"], r["month"]): Published(
            tuple(r["shipments"]), orjson.loads(r["figures"])
        )
        for r in await conn.fetch(
            "SELECT * FROM dataset_published WHERE dataset = $1 AND release_kind = $2", DATASET, kind
        )
    }
    out = cut(previous)
    spent = float(row["spent"]) + out.epsilon
    if spent > float(row["budget"]) + 1e-9:
        raise BudgetExhausted(
            f"this release would spend epsilon {out.epsilon:g}; {party} has "
            f"{max(0.0, float(row['budget']) - float(row['spent'])):g} of {float(row['budget']):g} left"
        )
    if out.epsilon > 0:
        await conn.execute(
            "UPDATE dataset_budget SET spent = $2, updated_at = $3 WHERE party = $1", party, spent, at
        )
        await conn.execute(
            "INSERT INTO dataset_debits (release_id, party, dataset, purpose, epsilon, debited_at)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            audited(out).ref, party, DATASET, kind, out.epsilon, at,
        )  # fmt: skip
    changed = [(key, p) for key, p in out.published.items() if previous.get(key) != p]
    await conn.executemany(
        "INSERT INTO dataset_published (dataset, release_kind, origin, destination, mode, carrier, month,"
        " shipments, figures, published_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        " ON CONFLICT (dataset, release_kind, origin, destination, mode, carrier, month) DO UPDATE SET"
        " shipments = EXCLUDED.shipments, figures = EXCLUDED.figures, published_at = EXCLUDED.published_at",
        [
            (DATASET, kind, k.origin, k.destination, k.mode, k.carrier, k.month, list(p.shipments),
             orjson.dumps(dict(p.figures)).decode(), at)
            for k, p in changed
        ],
    )  # fmt: skip
    for entry in await append(conn, [audited(out)]):
        await publish(entry)
    return out, spent


def _json(document: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(document, option=orjson.OPT_NON_STR_KEYS), status=status, content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )  # fmt: skip


def _refused(status: int, code: str, reason: str) -> web.Response:
    return _json(error_document(code, reason), status)


class DatasetReader:
    def __init__(
        self,
        settings: Settings,
        parties: PartyRegistry,
        store: DatasetStore,
        publisher: Publisher,
        clock: Callable[[], datetime],
        policy: Policy = POLICY,
        noise: random.Random | None = None,
    ) -> None:
        self.settings, self.parties, self.store, self.publisher = settings, parties, store, publisher
        self.clock, self.policy = clock, policy
        self.noise = noise or random.SystemRandom()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(f"/v1/datasets/{DATASET}", self.get_performance)
        app.router.add_get(f"/v1/datasets/{DATASET}/risk", self.get_claim_risk)

    def _purpose(self, party: str) -> DatasetPurpose | None:
        found = self.parties.party(party)
        readers = self.policy.datasets.readers
        return next((readers[role] for role in (found.roles if found else []) if role in readers), None)

    async def get_performance(self, request: web.Request) -> web.Response:
        caller = self.parties.authenticate(authorization(request))
        if caller is None:
            return _refused(UNAUTHENTICATED.status, UNAUTHENTICATED.code, UNAUTHENTICATED.reason)
        purpose = self._purpose(caller)
        if purpose is None:
            readers = ", ".join(f"{role} ({p})" for role, p in self.policy.datasets.readers.items())
            return _refused(
                403, "not_a_dataset_reader", f"{caller} has no role that reads data sets; readers: {readers}"
            )
        month, lane = request.query.get("month"), request.query.get("lane")
        if month is not None and not MONTH.match(month):
            return _refused(400, "bad_month", f"month must be YYYY-MM, not {month!r}")
        if lane is not None and not LANE.match(lane):
            return _refused(400, "bad_lane", f"lane must be ORIGIN-DESTINATION UN/LOCODEs (CNQZH-SGSIN), not {lane!r}")
        try:
            return await self._release(caller, purpose, month, lane)
        except BudgetExhausted as spent:
            return _refused(403, "privacy_budget_exhausted", str(spent))
        except (Unavailable, asyncpg.PostgresError, OSError):
            return _refused(503, "unavailable", "the hub cannot answer right now; try again later")

    async def get_claim_risk(self, request: web.Request) -> web.Response:
        """`?shipment=ID`: the claims the caller insures on that shipment, next to their policy and the risk of each
        claim's lane and carrier, from what the last underwriting release published (no new draw, no epsilon)."""
        caller = self.parties.authenticate(authorization(request))
        if caller is None:
            return _refused(UNAUTHENTICATED.status, UNAUTHENTICATED.code, UNAUTHENTICATED.reason)
        if self._purpose(caller) != "underwriting":
            reason = f"{caller} does not underwrite: only an insurer reads the risk view"
            return _refused(403, "not_an_underwriter", reason)
        shipment_id = request.query.get("shipment", "")
        try:
            record = await self.store.record(shipment_id)
            policy = record.insurance.policy if record is not None and record.insurance is not None else None
            if record is None or policy is None or policy.insurer != caller:
                return _refused(404, "not_found", f"no shipment {shipment_id!r} with a policy you underwrite")
            risks = risk_view(await self.store.published("noisy"), noise_scales(self.policy.datasets.policy()))
            claims = claim_risks(record, caller, risks)
            at = self.clock()
            share = Share(
                party=caller, shipment_id=record.shipment_id, version=record.version, kind=f"dataset.{DATASET}.risk",
                channel="api", fields=tuple(str(c["claim_id"]) for c in claims), policy_version=self.policy.version,
                relations=("underwriting",), via_grants=(), shared_at=at, ref=uuid.uuid4().hex,
            )  # fmt: skip

            async def publish(entry: dict[str, Any]) -> None:
                await self.publisher.send(self.settings.topics.audit, caller.encode(), orjson.dumps(entry), [])

            await self.store.audit(share, publish)
        except (Unavailable, asyncpg.PostgresError, OSError):
            return _refused(503, "unavailable", "the hub cannot answer right now; try again later")
        return _json(
            {
                "shipment_id": record.shipment_id,
                "policy": policy.model_dump(mode="json", include={"policy_number", "insurer", "insured_value"}),
                "claims": claims,
                "risk_from": "the cells the last underwriting release published (noisy; no new draw, no epsilon)",
            }
        )

    async def _release(self, caller: str, purpose: DatasetPurpose, month: str | None, lane: str | None) -> web.Response:
        rules = self.policy.datasets
        policy = rules.policy()
        records = await self.store.records()
        own = purpose == "own_figures"
        computed = select(cells(records, bound=None if own else policy.max_cells_per_shipment), month, lane)
        ref = uuid.uuid4().hex
        at = self.clock()

        def cut(previous: Mapping[CellKey, Published]) -> Release:
            if own:
                return release(computed, policy, previous, own_carrier=caller)
            return release(computed, policy, previous, noise=self.noise)

        def audited(out: Release) -> Share:
            return Share(
                party=caller, shipment_id=SUBJECT, version=None, kind=f"dataset.{DATASET}.{purpose}", channel="api",
                fields=tuple(sorted(r.key.label() for r in out.cells)), policy_version=self.policy.version,
                relations=(purpose,), via_grants=(), shared_at=at, ref=ref,
            )  # fmt: skip

        async def publish(entry: dict[str, Any]) -> None:
            await self.publisher.send(self.settings.topics.audit, caller.encode(), orjson.dumps(entry), [])

        kind = "own" if own else "noisy"
        job = ReleaseJob(caller, rules.epsilon_budget, kind, cut, audited, publish, at)
        out, spent = await self.store.released(job)
        document = release_document(out, policy, purpose, month, lane, noisy=not own)
        document["release_id"] = ref
        document["epsilon"] = {
            "budget": rules.epsilon_budget,
            "spent": spent,
            "remaining": max(0.0, rules.epsilon_budget - spent),
        }
        if purpose == "underwriting":
            document["risk"] = [asdict(r) for r in risk_view(out.cells, noise_scales(policy))]
        return _json(document)
