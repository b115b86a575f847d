"""Why an input was refused: the Rejection every decoder and carrier parser returns instead of raising.

Pure: no I/O, no imports outside pydantic and the bottom layer, so connectors and streams can both use it.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from hubconf.topics import reason_header


@dataclass(frozen=True)
class Rejection:
    """Why an input was refused. `code` is stable for machines, `reason` is for the person who sent it."""

    code: str
    reason: str

    def reason_header(self) -> bytes:
        """The reason as a header value (hubconf.topics.reason_header: UTF-8, never an error, bounded)."""
        return reason_header(self.reason)


def describe(error: ValidationError, limit: int = 5) -> str:
    """A compact, human-readable summary of a pydantic error: where, and what is wrong."""
    parts = []
    for item in error.errors(include_url=False)[:limit]:
        where = ".".join(_named(p) for p in item["loc"]) or "(event)"
        parts.append(f"{where}: {item['msg']}")
    more = error.error_count() - limit
    if more > 0:
        parts.append(f"... and {more} more")
    return "; ".join(parts)


def _named(step: object, most: int = 80) -> str:
    """One step of an error's location: a field name the sender chose may be any length, its reason is not."""
    text = str(step)
    return text if len(text) <= most else f"{text[:most]}... ({len(text)} characters)"


def for_event(index: int, rejection: Rejection) -> Rejection:
    """The refusal of one event of a payload, its reason prefixed by `event <index>:` unless the parser already
    labelled it so (`event <index>: ...` or `event <index> (<its id>): ...`)."""
    label = f"event {index}"
    labelled = rejection.reason.startswith((f"{label}:", f"{label} ("))
    return Rejection(rejection.code, rejection.reason if labelled else f"{label}: {rejection.reason}")


def combine(rejections: list[Rejection], limit: int = 20) -> Rejection:
    """Every refusal of one payload as one: a payload's original bytes are dead-lettered once, with all reasons.

    `code` is the distinct codes, sorted and comma-separated; `reason` lists the first `limit` reasons.
    """
    if not rejections:
        raise ValueError("nothing to combine")
    if len(rejections) == 1:
        return rejections[0]
    codes = ",".join(sorted({r.code for r in rejections}))
    reasons = [r.reason for r in rejections[:limit]]
    if len(rejections) > limit:
        reasons.append(f"... and {len(rejections) - limit} more")
    return Rejection(codes, f"{len(rejections)} events refused: " + "; ".join(reasons))
