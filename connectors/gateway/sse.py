"""Server-Sent Events framing (the WHATWG `text/event-stream` format) for the gateway's live views.

Pure. A frame is `field: value` lines ended by a blank line; `data` spanning several lines becomes several
`data:` lines; a line starting with `:` is a comment that clients ignore (a keepalive through proxies).
"""

from __future__ import annotations

from typing import Any

import orjson

CONTENT_TYPE = "text/event-stream"


def frame(
    event: str | None = None, data: str | None = None, event_id: str | None = None, retry_ms: int | None = None
) -> bytes:
    """One event. Field values may not hold line breaks, except `data`, which is split over `data:` lines."""
    for name, value in (("event", event), ("id", event_id)):
        if value is not None and ("\n" in value or "\r" in value):
            raise ValueError(f"an SSE {name} cannot hold a line break: {value!r}")
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    if event is not None:
        lines.append(f"event: {event}")
    if retry_ms is not None:
        lines.append(f"retry: {retry_ms}")
    if data is not None:
        lines.extend(f"data: {line}" for line in data.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    return ("\n".join(lines) + "\n\n").encode()


def comment(text: str) -> bytes:
    return f": {text}\n\n".encode()


def status_frame(version: int, document: dict[str, Any]) -> bytes:
    """A party's view of one record version; its id is the version, so a client resumes with Last-Event-ID."""
    return frame(event="status", data=orjson.dumps(document).decode(), event_id=str(version))


def revoked_frame(shipment_id: str) -> bytes:
    reason = "your access to this shipment has ended"
    return frame(event="revoked", data=orjson.dumps({"shipment_id": shipment_id, "reason": reason}).decode())


def last_event_id(header: str | None) -> int | None:
    """The record version a reconnecting client already has (`Last-Event-ID`); None when absent or not ours."""
    if header is None:
        return None
    text = header.strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None


def due(version: int, sent: int | None) -> bool:
    """Whether a version is news to the client: newer than the last it received (or it received none)."""
    return sent is None or version > sent
