"""What the carrier-format parsers share: screening and loading payload bytes, refusals, remarks, short reasons.

Pure, like the parsers: bytes and values in, values or Rejections out. Format-specific reading stays in each parser.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Iterable

import orjson
from pydantic import TypeAdapter, ValidationError

from schemas.events import HUB_EVENT, HubEvent
from schemas.identifiers import EventId, UnLocode
from schemas.rejection import Rejection, describe

REMARKS_LIMIT = 500  # the canonical schema's Text limit

_EVENT_ID: TypeAdapter[str] = TypeAdapter(EventId)
_LOCODE: TypeAdapter[str] = TypeAdapter(UnLocode)


class Refused(Exception):
    """Stops reading the current unit (payload, message, event or status); becomes a Rejection with this code."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason

    def rejection(self, where: str = "") -> Rejection:
        """This refusal as a Rejection, its reason prefixed by `where` (the unit's label) when given."""
        return Rejection(self.code, f"{where}: {self.reason}" if where else self.reason)


# --- payload bytes -----------------------------------------------------------------------------------------------


def screen(raw: bytes, limit: int, noun: str = "payload", *, blank_is_empty: bool = False) -> Rejection | None:
    """Why `raw` is refused before it is read: more than `limit` bytes, or empty (white space only too, when
    `blank_is_empty`); None when it may be read."""
    if len(raw) > limit:
        return Rejection("too_large", f"{noun} is {len(raw)} bytes; the limit is {limit}")
    if not (raw.strip() if blank_is_empty else raw):
        return Rejection("empty", "the payload is empty")
    return None


def load_json(raw: bytes, limit: int, noun: str = "payload", *, blank_is_empty: bool = False) -> object | Rejection:
    """The JSON document in `raw`, screened first (see `screen`); a Rejection when it is refused or not JSON."""
    refused = screen(raw, limit, noun, blank_is_empty=blank_is_empty)
    if refused is not None:
        return refused
    try:
        document: object = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        return Rejection("invalid_json", f"not valid UTF-8 JSON: {error}")
    return document


# --- canonical events --------------------------------------------------------------------------------------------


def event_or_rejection(where: str, document: Callable[[], dict[str, Any]]) -> HubEvent | Rejection:
    """The canonical event `document()` describes; else a Rejection labelled `where`: the parser's own refusal, or
    `invalid_event` with the schema's reasons."""
    try:
        built = document()
    except Refused as refused:
        return refused.rejection(where)
    try:
        return HUB_EVENT.validate_python(built)
    except ValidationError as error:
        return Rejection("invalid_event", f"{where}: {describe(error)}")


def event_id_or_digest(candidate: str, original: str, digest_prefix: str) -> str:
    """`candidate` when the hub's event id syntax carries it; else `digest_prefix` plus a digest of `original`, stable
    so that a re-sent event gets the same id."""
    try:
        return _EVENT_ID.validate_python(candidate)
    except ValidationError:
        return digest_prefix + digest(original, 40)


def digest(text: str, length: int) -> str:
    """The first `length` hex digits of the SHA-256 of `text` as UTF-8 (lone surrogates kept, so it never fails)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:length]


def is_locode(code: str) -> bool:
    return fits(_LOCODE, code)


def fits(adapter: TypeAdapter[str], value: str) -> bool:
    """Whether `value` is valid for the schema's identifier type `adapter`."""
    try:
        adapter.validate_python(value)
    except ValidationError:
        return False
    return True


def join_remarks(parts: Iterable[str], *, ellipsis: str = "...") -> str | None:
    """The parts joined by '; ', None when that is empty, cut to REMARKS_LIMIT characters ending in `ellipsis`."""
    text = "; ".join(parts)
    if not text:
        return None
    return text if len(text) <= REMARKS_LIMIT else text[: REMARKS_LIMIT - len(ellipsis)] + ellipsis


# --- short reasons -----------------------------------------------------------------------------------------------


def first_message(error: ValidationError) -> str:
    """The first error's message, without pydantic's 'Value error, ' prefix: a validator's own sentence."""
    first = error.errors(include_url=False)[0]
    return str(first["msg"]).removeprefix("Value error, ")


def kind_of(value: object) -> str:
    """What a JSON value is, as a reason names it ("got a number")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string" if value else "an empty string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def clip(value: object, limit: int = 60) -> object:
    """A long string cut to `limit` characters plus '...', so a reason quoting it stays short; other values as is."""
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + "..."
    return value
