"""A test's Server-Sent Events client: the WHATWG parsing rules, written independently of connectors.gateway.sse, and
a reader of whole frames from an aiohttp response."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field

from aiohttp import StreamReader

MAX_FRAME_BYTES = 16 * 1024 * 1024  # a whole view is one frame: more than aiohttp's default line limit


@dataclass
class Frame:
    """One blank-line-terminated block as a client sees it: its fields, and the comments it held."""

    event: str | None = None
    id: str | None = None
    retry: str | None = None
    data: list[str] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(self.data)


def parse(stream: bytes) -> list[Frame]:
    """Every complete frame of `stream` (lines end with CRLF, LF or CR; a field's value loses one leading space)."""
    frames, current = [], Frame()
    for line in re.split(r"\r\n|\n|\r", stream.decode())[:-1]:
        if line == "":
            frames.append(current)
            current = Frame()
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "":
            current.comments.append(value)
        elif name == "data":
            current.data.append(value)
        elif name in ("event", "id", "retry"):
            setattr(current, name, value)
    return frames


async def next_frame(content: StreamReader, timeout: float = 5.0) -> Frame | None:
    """The next frame from a live response; None once the server has ended the stream."""
    block = await asyncio.wait_for(content.readuntil(b"\n\n", max_size=MAX_FRAME_BYTES), timeout)
    if not block.endswith(b"\n\n"):
        return None  # the stream ended (readuntil returns what was left, if anything)
    (frame,) = parse(block)
    return frame


async def next_event(content: StreamReader, timeout: float = 5.0) -> Frame | None:
    """The next frame that carries an event (skips comments and `retry:`-only frames); None at the end."""
    while True:
        frame = await next_frame(content, timeout)
        if frame is None or frame.event is not None or frame.data:
            return frame
