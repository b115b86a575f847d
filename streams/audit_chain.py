"""The share audit as a hash chain: each entry's hash covers its content and the hash of the entry before it, so a
deleted, edited or reordered entry shows; and the checks `mmhub audit verify` makes against the chain and its
copy on `hub.audit`.

One chain for every channel (Kafka, webhooks, the gateway's reads): its writers take turns on its head row in
Postgres (connectors.sharing.chain). The first entry follows `GENESIS`.

Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, Sequence

import orjson

GENESIS = "0" * 64
# The content an entry's hash covers: a Share's document (streams.sharing.Share.document), nothing else.
CONTENT = (
    "share_id", "party", "shipment_id", "record_version", "kind", "channel", "fields", "policy_version", "relations",
    "via_grants", "shared_at",
)
CHAIN = ("seq", "prev_hash", "hash")


def content(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The hashed content of an entry (a share document, a `share_audit` row or a `hub.audit` message), with its
    time as UTC ISO 8601 and its arrays as lists, so the three read alike."""
    out = {key: entry[key] for key in CONTENT}
    at = out["shared_at"]
    at = datetime.fromisoformat(at) if isinstance(at, str) else at
    out["shared_at"] = at.astimezone(timezone.utc).isoformat()
    for key in ("fields", "relations", "via_grants"):
        out[key] = list(out[key])
    return out


def link(prev_hash: str, entry: Mapping[str, Any]) -> str:
    """The hash of an entry after `prev_hash`: SHA-256 of the previous hash, a newline and the canonical JSON of
    its content (keys sorted, no spaces)."""
    canonical = orjson.dumps(content(entry), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical).hexdigest()


def extend(head_seq: int, head_hash: str, entries: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """`entries` chained after the head: each with its content, `seq`, `prev_hash` and `hash`."""
    out = []
    seq, prev = head_seq, head_hash
    for entry in entries:
        seq += 1
        digest = link(prev, entry)
        out.append({**content(entry), "seq": seq, "prev_hash": prev, "hash": digest})
        prev = digest
    return out


# --- verification ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One thing the audit does not agree on: `kind` (a stable code), the entry's `seq` and `share_id` where
    known, and what was found, for a person."""

    kind: str
    seq: int | None
    share_id: str | None
    detail: str

    def document(self) -> dict[str, Any]:
        return {"kind": self.kind, "seq": self.seq, "share_id": self.share_id, "detail": self.detail}

    def line(self) -> str:
        where = " ".join(part for part in (f"seq {self.seq}" if self.seq is not None else "", self.share_id or "") if part)
        return f"{self.kind:<14} {where}: {self.detail}"


@dataclass(frozen=True)
class Head:
    seq: int
    hash: str


def verify(
    rows: Sequence[Mapping[str, Any]],
    head: Head | None,
    published: Sequence[Mapping[str, Any]],
    pending: Iterable[str] = (),
    appended_since: int = 0,
) -> list[Finding]:
    """Everything wrong with the audit.

    `rows`: the `share_audit` rows (content and `seq`, `prev_hash`, `hash`; `seq` None for a row never chained).
    `head`: the chain's head row. `published`: every `hub.audit` message, oldest first per partition; a message
    written before the chain began has no chain fields and is compared by content. `pending`: share ids still in the
    outbox, not yet expected on the topic. `appended_since`: how many rows writers appended after `rows` and `head`
    were read (the head's seq when the topic had been read, less `head.seq`): their copies on hub.audit are not
    expected in `rows` yet.
    """
    findings: list[Finding] = []
    chained = sorted((r for r in rows if r["seq"] is not None), key=lambda r: r["seq"])
    by_seq_published = {m["seq"]: m for m in published if m.get("seq") is not None}
    findings += [
        Finding("unchained", None, r["share_id"], "the row has no place in the chain (written around it)")
        for r in rows if r["seq"] is None
    ]
    findings += _walk(chained, head, by_seq_published)
    findings += _compare(chained, [r for r in rows if r["seq"] is None], published, set(pending), head, appended_since)
    return findings


def _walk(chained: Sequence[Mapping[str, Any]], head: Head | None, published: Mapping[int, Mapping[str, Any]]) -> list[Finding]:
    findings: list[Finding] = []
    expected, prev = 1, GENESIS
    for row in chained:
        seq = row["seq"]
        if seq < expected:
            findings.append(Finding("duplicate_seq", seq, row["share_id"], f"a second row at seq {seq}"))
            continue
        gap = seq > expected
        findings += [_deleted(missing, published) for missing in range(expected, seq)]
        if not gap and row["prev_hash"] != prev:
            findings.append(Finding("reordered", seq, row["share_id"], "does not follow the row before it in the chain "
                                    f"(prev_hash {row['prev_hash'][:12]}…, the row before hashes to {prev[:12]}…)"))
        if link(row["prev_hash"], row) != row["hash"]:
            findings.append(Finding("edited", seq, row["share_id"], "its content no longer matches its hash"))
        expected, prev = seq + 1, row["hash"]
    if head is None:
        if chained:
            findings.append(Finding("head_missing", None, None, "the chain's head row is gone"))
        return findings
    findings += [_deleted(missing, published) for missing in range(expected, head.seq + 1)]
    if head.seq < expected - 1:
        findings.append(Finding("head_behind", head.seq, None, f"the head is at seq {head.seq}, the rows reach {expected - 1}"))
    elif head.seq == expected - 1 and head.hash != prev:
        findings.append(Finding("head_mismatch", head.seq, None, "the head's hash is not the last row's"))
    return findings


def _deleted(seq: int, published: Mapping[int, Mapping[str, Any]]) -> Finding:
    copy = published.get(seq)
    if copy is None:
        return Finding("deleted", seq, None, "no row at this place in the chain, and no copy on hub.audit")
    return Finding("deleted", seq, copy["share_id"], f"no row; hub.audit holds it: {copy['party']} got "
                   f"{copy['kind']} of {copy['shipment_id']} v{copy['record_version']} via {copy['channel']}")


def _compare(
    chained: Sequence[Mapping[str, Any]],
    unchained: Sequence[Mapping[str, Any]],
    published: Sequence[Mapping[str, Any]],
    pending: set[str],
    head: Head | None,
    appended_since: int,
) -> list[Finding]:
    """The table against its copy on hub.audit, by share id."""
    findings: list[Finding] = []
    copies: dict[str, Mapping[str, Any]] = {}
    for message in published:
        share_id = message["share_id"]
        held = copies.get(share_id)
        if held is None or (held.get("seq") is None and message.get("seq") is not None):
            copies[share_id] = message  # a chained copy of a share first published before the chain says more
        elif _chain_view(held) != _chain_view(message) and message.get("seq") is not None:
            findings.append(Finding("topic_conflict", message.get("seq"), share_id, "hub.audit holds two different copies"))
    rows = {row["share_id"]: row for row in [*chained, *unchained]}
    seqs = {row["seq"] for row in chained}
    top = head.seq if head is not None else max(seqs, default=0)
    for share_id, copy in copies.items():
        row = rows.get(share_id)
        if row is None:
            if copy.get("seq") is not None and top < copy["seq"] <= top + appended_since:
                continue  # appended after the table was read
            if copy.get("seq") is None or copy["seq"] in seqs or copy["seq"] > top:
                findings.append(Finding("not_in_table", copy.get("seq"), share_id, "on hub.audit but not in share_audit"))
            continue  # a missing place in the chain is already reported as deleted
        if content(row) != content(copy):
            differ = sorted(k for k in CONTENT if content(row)[k] != content(copy)[k])
            findings.append(Finding("differs", row["seq"], share_id, f"share_audit and hub.audit differ in {', '.join(differ)}"))
        elif copy.get("seq") is not None and _chain_view(row) != _chain_view(copy):
            findings.append(Finding("reordered", row["seq"], share_id,
                                    f"hub.audit has it at seq {copy['seq']}, share_audit at seq {row['seq']}"))
    for share_id, row in rows.items():
        if share_id not in copies and share_id not in pending:
            findings.append(Finding("not_on_topic", row["seq"], share_id, "in share_audit but not on hub.audit"))
    return findings


def _chain_view(entry: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(entry.get(key) for key in CHAIN)
