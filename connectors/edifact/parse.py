"""UN/EDIFACT IFTSTA (international multimodal status report) to canonical tracking events, purely.

One result per STS status of each CNI consignment, in message order: a TrackingEvent, or a Rejection naming the
message, consignment, status and segment that is wrong. An interchange that cannot be read at all (bad syntax, no
UNB/UNZ envelope) is a single Rejection; a broken message is one Rejection and the others are still read.

What is read (segment groups as in the IFTSTA directories):
    UNB ... UNZ           interchange; its sender is part of every event id; its date is the fallback recorded_at
    UNH ... UNT           one IFTSTA message; UNT's segment count and reference are checked
    BGM                   mandatory; its document number and function are part of every event id; only original
                          messages (function 9 or absent) are read, see codes.py
    DTM+137 (header)      document date -> recorded_at
    RFF (header)          references that apply to every status in the message
    FTX (header)          free text that applies to every status: kept in each status's remarks
    CNI                   a consignment; STS groups follow it
    STS + its RFF, DTM, LOC, FTX, TDT, EQD
                          one status: Rec 24 code, event time and classifier, references, first UN/LOCODE,
                          remarks, transport means, containers (EQD+CN, ISO 6346 checked); segments of the
                          status's nested groups (TDT, EQD) count as the status's own. Every DTM of the status
                          is kept in its remarks as sent (qualifier, value, format: e.g. 186 departure actual)
Everything else (NAD, TSR, CNT, PCI, DOC, SEL, MEA, ...) is skipped. The leg is never set: reference resolution
decides it later.

Times: the status's DTM qualifier gives both the time and the classifier (actual, estimated or scheduled: ACT, EST,
PLN; codes.EVENT_TIME). Formats 203/204 carry no zone and are read as UTC, 205 carries its offset (why: codes.py).

event_id = "iftsta:<UNB sender>:<BGM document number>:<BGM function>:<consignment position>:<status position>": the
message's own content, never its envelope's control references, so the same messages re-sent in a new interchange
(a new UNB or UNH reference) map to the same ids and the hub drops the copies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from pydantic import TypeAdapter, ValidationError

from connectors.edifact import codes
from connectors.payload import (
    REMARKS_LIMIT,
    Refused,
    digest,
    event_or_rejection,
    first_message,
    fits,
    is_locode,
    join_remarks,
    screen,
)
from schemas.events import HubEvent
from schemas.identifiers import ContainerNumber, DocumentNumber
from schemas.rejection import Rejection
from schemas.status import Classifier

Result = HubEvent | Rejection

_TAG = re.compile(r"[A-Z][A-Z0-9]{2}")
_SAFE_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,34}")
_DIGITS = {codes.FORMAT_MINUTES: 12, codes.FORMAT_SECONDS: 14}
_ZONED = re.compile(r"([0-9]{12})([+-])([0-9]{2})([0-9]{2})")
_CONTAINER: TypeAdapter[str] = TypeAdapter(ContainerNumber)
_DOCUMENT: TypeAdapter[str] = TypeAdapter(DocumentNumber)


def _syntax(reason: str) -> Refused:
    return Refused("invalid_edifact", reason)


# --- syntax: bytes to segments ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Separators:
    component: str
    element: str
    release: str | None
    terminator: str


@dataclass(frozen=True)
class Segment:
    number: int  # position in the interchange, UNB = 1 (the UNA service string advice is not a segment)
    tag: str
    elements: tuple[tuple[str, ...], ...]  # the elements after the tag, each as its components

    def value(self, element: int, component: int = 1) -> str:
        """The data at 1-based (element, component) after the tag, "" when the sender left it out."""
        if element > len(self.elements):
            return ""
        components = self.elements[element - 1]
        return components[component - 1] if component <= len(components) else ""

    @property
    def where(self) -> str:
        return f"{self.tag} at segment {self.number}"


def separators(text: str) -> tuple[Separators, int]:
    """The service characters from a leading UNA (or the defaults), and where the segments start."""
    if not text.startswith("UNA"):
        defaults = codes.DEFAULT_SEPARATORS
        return Separators(defaults[0], defaults[1], defaults[3], defaults[5]), 0
    advice = text[3:9]
    if len(advice) < 6:
        raise _syntax("the UNA service string advice is cut short: it needs 6 characters after 'UNA'")
    component, element, release, terminator = advice[0], advice[1], advice[3], advice[5]  # [2] decimal, [4] reserved
    # UNA puts a space where a syntax level has no release character.
    release_char = None if release == " " else release
    roles = [component, element, terminator] + ([release_char] if release_char else [])
    if len(set(roles)) != len(roles):
        raise _syntax(
            f"the UNA service string advice {advice!r} gives one character two roles "
            "(component, element, release, terminator)"
        )
    if any(char.isalnum() or char in "\r\n" for char in roles):
        raise _syntax(f"the UNA service string advice {advice!r} declares a letter, digit or line break as a separator")
    start = 9
    while start < len(text) and text[start] in "\r\n":
        start += 1
    return Separators(component, element, release_char, terminator), start


def tokenize(text: str) -> list[Segment]:
    """Split an interchange into segments, honouring UNA and the release character; line breaks after a segment
    terminator are ignored (senders wrap interchanges one segment a line)."""
    seps, index = separators(text)
    segments: list[Segment] = []
    elements: list[tuple[str, ...]] = []
    components: list[str] = []
    chars: list[str] = []
    end = len(text)
    while index < end:
        char = text[index]
        if char == seps.release:
            if index + 1 >= end:
                raise _syntax(
                    f"segment {len(segments) + 1}: the data ends with the release character {char!r}, "
                    "which must be followed by the character it releases"
                )
            chars.append(text[index + 1])
            index += 2
            continue
        if char == seps.component:
            components.append("".join(chars))
            chars = []
        elif char == seps.element:
            components.append("".join(chars))
            elements.append(tuple(components))
            chars, components = [], []
        elif char == seps.terminator:
            components.append("".join(chars))
            elements.append(tuple(components))
            segments.append(_segment(len(segments) + 1, elements))
            chars, components, elements = [], [], []
            index += 1
            while index < end and text[index] in "\r\n":
                index += 1
            continue
        else:
            chars.append(char)
        index += 1
    if elements or components or "".join(chars).strip():
        raise _syntax(
            f"segment {len(segments) + 1} is not closed by the segment terminator {seps.terminator!r} "
            "(is the interchange cut short?)"
        )
    return segments


def _segment(number: int, elements: list[tuple[str, ...]]) -> Segment:
    tag = elements[0][0]
    if not _TAG.fullmatch(tag):
        raise _syntax(f"segment {number}: {tag[:20]!r} is not a segment tag (three capital letters, e.g. 'STS')")
    return Segment(number, tag, tuple(elements[1:]))


def _text(raw: bytes) -> str:
    # UNOY/UNOW interchanges are UTF-8 and UNOA/UNOB are ASCII, which UTF-8 reads too; UNOC (ISO 8859-1) is the
    # common 8-bit one. Latin-1 decodes any byte, so decoding never fails.
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return text.lstrip("\ufeff \t\r\n")


# --- structure: interchange, messages, consignments, statuses ----------------------------------------------------


@dataclass(frozen=True)
class _Interchange:
    reference: str
    sender: str
    prepared_at: datetime
    units: list[list[Segment] | Rejection]  # each message UNH..UNT, or why it could not be delimited


@dataclass
class _Status:
    sts: Segment
    segments: list[Segment] = field(default_factory=list)


@dataclass
class _Consignment:
    cni: Segment
    statuses: list[_Status] = field(default_factory=list)


def _interchange(segments: list[Segment]) -> _Interchange:
    if not segments:
        raise _syntax("no segments: an interchange starts with UNB (after an optional UNA)")
    unb = segments[0]
    if unb.tag != "UNB":
        raise _syntax(f"segment 1 is {unb.tag}: an interchange starts with UNB (after an optional UNA)")
    reference = unb.value(5)
    if not reference:
        raise _syntax("UNB at segment 1 has no interchange control reference (element 5)")
    prepared_at = _unb_time(unb)
    units: list[list[Segment] | Rejection] = []
    current: list[Segment] | None = None
    unz: Segment | None = None
    groups = 0
    for segment in segments[1:]:
        if unz is not None:
            raise _syntax(f"{segment.where} follows the UNZ interchange trailer")
        if segment.tag == "UNH":
            if current is not None:
                units.append(_unclosed(current, segment))
            current = [segment]
        elif segment.tag == "UNT":
            if current is None:
                raise _syntax(f"{segment.where} closes a message that no UNH opened")
            current.append(segment)
            units.append(current)
            current = None
        elif segment.tag == "UNZ":
            if current is not None:
                units.append(_unclosed(current, segment))
                current = None
            unz = segment
        elif current is not None:
            current.append(segment)
        elif segment.tag in ("UNG", "UNE"):
            groups += segment.tag == "UNG"
        else:
            raise _syntax(f"{segment.where} stands outside any message (between UNB/UNT and the next UNH)")
    if unz is None:
        raise _syntax("the interchange has no UNZ trailer: it is cut short")
    if unz.value(2) != reference:
        raise _syntax(f"{unz.where} closes interchange {unz.value(2)!r} but UNB opened {reference!r}")
    expected = groups or len(units)
    count = unz.value(1)
    if not count.isdigit() or int(count) != expected:
        what = "functional groups" if groups else "messages"
        raise _syntax(f"{unz.where} counts {count!r} {what} but the interchange has {expected}")
    sender = unb.value(2)
    if not sender:
        raise _syntax("UNB at segment 1 has no interchange sender (element 2)")
    return _Interchange(reference, sender, prepared_at, units)


def _unclosed(message: list[Segment], next_segment: Segment) -> Rejection:
    unh = message[0]
    return Rejection(
        "invalid_edifact",
        f"message {unh.value(1)!r} (UNH at segment {unh.number}) has no UNT trailer before {next_segment.where}",
    )


def _unb_time(unb: Segment) -> datetime:
    date, time = unb.value(4, 1), unb.value(4, 2)
    # Syntax versions 1-3 send YYMMDD, version 4 CCYYMMDD; interchanges of the last century are not expected.
    full = "20" + date if len(date) == 6 else date
    if len(full) != 8 or not full.isdigit() or len(time) != 4 or not time.isdigit():
        raise _syntax(f"UNB at segment 1: date/time {date}:{time} is not YYMMDD:HHMM or CCYYMMDD:HHMM")
    try:
        return datetime.strptime(full + time, "%Y%m%d%H%M").replace(tzinfo=timezone.utc)
    except ValueError:
        raise _syntax(f"UNB at segment 1: {date}:{time} is not a real date and time") from None


def _message(message: list[Segment], interchange: _Interchange, source: str) -> list[Result]:
    unh = message[0]
    label = f"message {unh.value(1)!r} (UNH at segment {unh.number})"
    try:
        header, consignments = _message_body(message)
    except Refused as refused:
        return [refused.rejection(label)]
    bgm = message[1]
    document = f"{_token(interchange.sender)}:{_token(bgm.value(2))}:{bgm.value(3) or codes.ORIGINAL}"
    results: list[Result] = []
    for c_index, consignment in enumerate(consignments, start=1):
        where = f"{label}, consignment {c_index} (CNI at segment {consignment.cni.number})"
        if not consignment.statuses:
            results.append(Rejection("invalid_edifact", f"{where}: no STS status follows the CNI"))
            continue
        for s_index, status in enumerate(consignment.statuses, start=1):
            context = _Context(
                source=source,
                event_id=f"iftsta:{document}:{c_index}:{s_index}",
                recorded_at=header.recorded_at or interchange.prepared_at,
                header=header,
            )
            label_status = f"{where}, status {s_index} (STS at segment {status.sts.number})"
            results.append(_status_event(status, context, label_status))
    return results


Found = tuple[str, str, str | None]  # a reference: kind, value, transaction type


@dataclass
class _Header:
    """What the message header says about every status in it, read once for all of them: read again for each status,
    a header of thousands of RFF or FTX segments cost time quadratic in the interchange's size (4,000 of each: 14 s)."""

    references: list[Found] = field(default_factory=list)  # distinct, at most codes.MAX_REFERENCES
    text: str = ""  # the FTX texts joined, cut just past what a status's remarks can hold
    recorded_at: datetime | None = None


def _message_body(message: list[Segment]) -> tuple[_Header, list[_Consignment]]:
    unh, unt = message[0], message[-1]
    if not unh.value(1):
        raise _syntax("UNH has no message reference number (element 1)")
    if unh.value(2, 1) != codes.MESSAGE_TYPE:
        raise Refused("unsupported_message", f"is {unh.value(2, 1)!r}; this parser reads {codes.MESSAGE_TYPE}")
    count = unt.value(1)
    if not count.isdigit() or int(count) != len(message):
        raise _syntax(f"{unt.where} counts {count!r} segments but the message has {len(message)} (UNH to UNT)")
    if unt.value(2) != unh.value(1):
        raise _syntax(f"{unt.where} closes message {unt.value(2)!r}")
    if len(message) < 3 or message[1].tag != "BGM":
        found = message[1].where if len(message) > 2 else unt.where
        raise _syntax(f"the mandatory BGM must follow UNH, found {found}")
    if not message[1].value(2):
        raise _syntax("BGM has no document number (element 2): with the sender, it identifies the message's statuses")
    function = message[1].value(3)
    if function not in codes.ORIGINAL_FUNCTIONS:
        raise Refused(
            "unsupported_message",
            f"BGM message function {function!r} is not read: only original status reports (9) are; "
            "send corrections as a new original report",
        )
    header = _Header()
    references: list[Segment] = []
    texts: list[str] = []
    consignments: list[_Consignment] = []
    for segment in message[2:-1]:
        if segment.tag == "CNI":
            consignments.append(_Consignment(segment))
        elif segment.tag == "STS":
            if not consignments:
                raise _syntax(f"{segment.where} reports a status before any CNI consignment")
            consignments[-1].statuses.append(_Status(segment))
        elif consignments and consignments[-1].statuses:
            consignments[-1].statuses[-1].segments.append(segment)
        elif consignments:
            continue  # consignment-level LOC/CNT (origin, destination, totals) say nothing about one status
        elif segment.tag == "RFF":
            references.append(segment)
        elif segment.tag == "FTX":
            texts.append(_free_text(segment))
        elif segment.tag == "DTM" and segment.value(1, 1) == codes.DOCUMENT_TIME:
            header.recorded_at = _dtm_time(segment)
    if not consignments:
        raise _syntax("no CNI consignment: the message reports nothing")
    header.references = _found(references)
    if len(header.references) > codes.MAX_REFERENCES:
        raise Refused(
            "invalid_edifact",
            f"the message header names {len(header.references)} distinct references; a status takes at most "
            f"{codes.MAX_REFERENCES}",
        )
    # one past the limit, so that a status's remarks still end in an ellipsis when the header's texts overflow them
    header.text = "; ".join(text for text in texts if text)[: REMARKS_LIMIT + 1]
    return header, consignments


# --- one status to one canonical event ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    source: str
    event_id: str
    recorded_at: datetime
    header: _Header


def _status_event(status: _Status, context: _Context, where: str) -> Result:
    return event_or_rejection(where, lambda: _status_document(status, context))


def _status_document(status: _Status, context: _Context) -> dict[str, Any]:
    code = status.sts.value(2, 1)
    if not code:
        raise _syntax("STS has no status code (element 2, UN/ECE Rec 24)")
    occurred_at, classifier = _event_time(status.segments)
    notes = [_free_text(segment) for segment in status.segments if segment.tag == "FTX"]
    location = None
    for segment in status.segments:
        place = segment.value(2, 1) if segment.tag == "LOC" else ""
        if not place:
            continue
        if not is_locode(place):
            notes.append(f"location {place} (not a UN/LOCODE)")
        elif location is None:
            location = place  # the first place is where the status happened; later ones are e.g. the next stop
    remarks = [note.strip() for note in notes if note.strip()]
    remarks += [context.header.text] if context.header.text else []  # already stripped and joined
    remarks += [_dtm_remark(segment).strip() for segment in status.segments if segment.tag == "DTM"]
    containers = _containers(status.segments)
    found = context.header.references + _found([s for s in status.segments if s.tag == "RFF"])
    found.extend(("container", number, None) for number in containers)
    references = [
        {"kind": kind, "value": value} | ({"type": typed} if typed else {}) for kind, value, typed in dict.fromkeys(found)
    ]
    if not references:
        raise Refused(
            "invalid_event",
            "names nothing the hub can find the shipment by: add an EQD+CN container or an RFF with qualifier "
            f"{', '.join([*codes.REFERENCE_KINDS, *sorted(codes.TRANSACTION_QUALIFIERS)])} (in the status group or the "
            "message header)",
        )
    status_name = codes.STATUS.get(code, "unknown")
    payload: dict[str, Any] = {"status": status_name, "raw_code": code, "code_list": codes.CODE_LIST}
    optional = {
        "location": location,
        "container": containers[0] if containers else None,
        "transport_means": _transport_means(status.segments),
        "remarks": join_remarks(remarks, ellipsis="…"),
    }
    payload.update({key: value for key, value in optional.items() if value is not None})
    return {
        "event_type": "tracking",
        "event_id": context.event_id,
        "source": context.source,
        "references": references,
        "occurred_at": occurred_at,
        "recorded_at": context.recorded_at,
        "classifier": classifier,
        "payload": payload,
    }


def _event_time(segments: list[Segment]) -> tuple[datetime, Classifier]:
    chosen: tuple[Segment, Classifier] | None = None
    for segment in segments:
        classifier = codes.EVENT_TIME.get(segment.value(1, 1)) if segment.tag == "DTM" else None
        if classifier is None:
            continue
        if chosen is None or codes.CLASSIFIER_PRECEDENCE[classifier] < codes.CLASSIFIER_PRECEDENCE[chosen[1]]:
            chosen = (segment, classifier)
    if chosen is None:
        raise _syntax(
            "no event time: a status needs a DTM with qualifier 334 (status change date/time) or another event-time "
            f"qualifier ({', '.join(sorted(codes.EVENT_TIME, key=int))})"
        )
    return _dtm_time(chosen[0]), chosen[1]


def _dtm_time(segment: Segment) -> datetime:
    value, fmt = segment.value(1, 2), segment.value(1, 3)
    try:
        if fmt in _DIGITS and len(value) == _DIGITS[fmt] and value.isdigit():
            stamp = datetime.strptime(value, "%Y%m%d%H%M%S" if fmt == codes.FORMAT_SECONDS else "%Y%m%d%H%M")
            return stamp.replace(tzinfo=timezone.utc)
        zoned = _ZONED.fullmatch(value) if fmt == codes.FORMAT_ZONED else None
        if zoned:
            local, sign, hours, minutes = zoned.groups()
            offset = timedelta(hours=int(hours), minutes=int(minutes)) * (-1 if sign == "-" else 1)
            return datetime.strptime(local, "%Y%m%d%H%M").replace(tzinfo=timezone(offset))
    except ValueError:
        raise _syntax(f"{segment.where}: {value!r} is not a real date and time in format {fmt}") from None
    raise _syntax(
        f"{segment.where}: {value!r} with format {fmt!r} is not read; send format 203 (CCYYMMDDHHMM), "
        "204 (CCYYMMDDHHMMSS) or 205 (CCYYMMDDHHMM?+HHMM, with its offset from UTC)"
    )


def _dtm_remark(segment: Segment) -> str:
    """A status's DTM as sent, so its qualifier (186 departure actual, 178 arrival actual, 132 arrival estimated...)
    survives: `DTM 186 202603011845+0800 (205)`."""
    qualifier, value, fmt = segment.value(1, 1), segment.value(1, 2), segment.value(1, 3)
    return f"DTM {qualifier} {value}" + (f" ({fmt})" if fmt else "")


def _containers(segments: list[Segment]) -> list[str]:
    containers: list[str] = []
    for segment in segments:
        if segment.tag != "EQD" or segment.value(1, 1) != codes.CONTAINER_EQUIPMENT:
            continue
        number = segment.value(2, 1)
        try:
            _CONTAINER.validate_python(number)
        except ValidationError as error:
            raise Refused("invalid_event", f"{segment.where}: {first_message(error)}") from None
        if number not in containers:
            containers.append(number)
    return containers


def _found(rffs: list[Segment]) -> list[Found]:
    """The distinct references the RFF segments name, in order."""
    found: list[Found] = []
    for segment in rffs:
        qualifier = segment.value(1, 1)
        kind = codes.REFERENCE_KINDS.get(qualifier)
        typed = qualifier if qualifier in codes.TRANSACTION_QUALIFIERS else None
        if kind is None and typed is None:
            continue
        number = segment.value(1, 2)
        if not number:
            raise _syntax(f"{segment.where}: reference qualifier {qualifier} has no reference number")
        if kind is None and not fits(_DOCUMENT, number):
            continue  # a business transaction the hub's reference syntax cannot carry names nothing it can resolve
        found.append((kind or "business_transaction", number, typed))
    return list(dict.fromkeys(found))


def _transport_means(segments: list[Segment]) -> str | None:
    for segment in segments:
        if segment.tag == "TDT":
            # 8028 conveyance reference (voyage, train or trip number), else 8213 the means' own id (e.g. IMO number).
            return segment.value(2) or segment.value(8, 1) or None
    return None


def _free_text(segment: Segment) -> str:
    if len(segment.elements) < 4:
        return ""
    return " ".join(part for part in segment.elements[3] if part).strip()


def _token(reference: str) -> str:
    # Control references are an..14 in any syntax character; the event id allows only a safe subset.
    if _SAFE_REF.fullmatch(reference):
        return reference
    return "h" + digest(reference, 16)


# --- entry point -------------------------------------------------------------------------------------------------


def parse(raw: bytes, source: str) -> list[HubEvent | Rejection]:
    """Every STS status in an IFTSTA interchange as a canonical tracking event or a Rejection; never raises."""
    rejected = screen(raw, codes.MAX_INTERCHANGE_BYTES, "interchange", blank_is_empty=True)
    if rejected is not None:
        return [rejected]
    try:
        interchange = _interchange(tokenize(_text(raw)))
    except Refused as refused:
        return [refused.rejection()]
    results: list[Result] = []
    documents: set[tuple[str, str]] = set()
    for unit in interchange.units:
        if isinstance(unit, Rejection):
            results.append(unit)
            continue
        bgm = unit[1] if len(unit) > 2 and unit[1].tag == "BGM" else None
        if bgm is not None:
            document = (bgm.value(2), bgm.value(3) or codes.ORIGINAL)
            if document in documents:
                # The BGM document is part of every event id: a repeat in one interchange would give two statuses
                # one identity (a re-sent message comes in an interchange of its own).
                unh = unit[0]
                reason = (
                    f"message {unh.value(1)!r} (UNH at segment {unh.number}) repeats BGM document "
                    f"{bgm.value(2)!r} of an earlier message in the interchange"
                )
                results.append(Rejection("invalid_edifact", reason))
                continue
            documents.add(document)
        results.extend(_message(unit, interchange, source))
    return results
