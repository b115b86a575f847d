"""The IFTSTA parser: each sample's exact canonical events and rejections, the syntax rules behind them, and that no
input bytes make it raise or hang."""

from __future__ import annotations

import hashlib
from functools import partial
from typing import Any

from hypothesis import event, given
from hypothesis import strategies as st

from connectors.edifact import parse
from connectors.edifact.parse import tokenize
from schemas.events import TrackingEvent
from schemas.rejection import Rejection
from streams.merge import ShipmentState, apply_all, project
from streams.references import addressed

from ..builders import AUTHORITY
from .helpers import FUZZ, Doc, canonical, canonical_tracking, samples_of, well_formed_events

SAMPLES = samples_of("edifact")
SOURCE = "carrier.cr-rail"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def parsed(raw: bytes) -> list[Doc | Rejection]:
    return [canonical(result) for result in parse(raw, SOURCE)]


# The full canonical JSON of an IFTSTA status event, every default spelled out.
tracking = partial(canonical_tracking, source=SOURCE, code_list="UNECE-Rec24")


def interchange(*segments: str, ref: str = "T1", una: str = "") -> bytes:
    """A one-message interchange around `segments` (BGM onwards), with correct UNT and UNZ counts."""
    body = ["UNH+M1+IFTSTA:D:01B:UN", *segments]
    message = [s + "'" for s in body] + [f"UNT+{len(body) + 1}+M1'"]
    lines = ([una] if una else []) + [f"UNB+UNOC:3+TESTCO:ZZZ+MMHUB:ZZZ+260301:1200+{ref}'", *message, f"UNZ+1+{ref}'"]
    return "\n".join(lines).encode()


STATUS = ["BGM+23+DOC1+9", "CNI+1+CMR1", "STS+1+21", "RFF+CMR:PL-CMR-1", "DTM+334:202603011130:203"]


# --- the samples -------------------------------------------------------------------------------------------------


def test_rail_sample_reads_every_status_of_every_consignment() -> None:
    rail_1 = [("rail_waybill", "SMGS24081234"), ("container", "CSQU3054383")]
    assert parsed(sample("iftsta_rail.edi")) == [
        tracking(
            "iftsta:CRRAIL:STA-2026-0417:9:1:1",
            occurred="2026-03-01T02:30:00Z",
            recorded="2026-03-05T08:30:00Z",
            status="received",
            raw_code="74",
            references=rail_1,
            location="CNCKG",
            container="CSQU3054383",
            remarks="DTM 334 202603011030+0800 (205)",
        ),
        tracking(
            "iftsta:CRRAIL:STA-2026-0417:9:1:2",
            occurred="2026-03-01T10:45:00Z",
            recorded="2026-03-05T08:30:00Z",
            status="departed",
            raw_code="24",
            references=rail_1,
            location="CNCKG",
            container="CSQU3054383",
            transport_means="X8017",
            remarks="DTM 334 202603011845+0800 (205)",
        ),
        tracking(
            "iftsta:CRRAIL:STA-2026-0417:9:1:3",
            occurred="2026-03-18T11:00:00Z",
            recorded="2026-03-05T08:30:00Z",
            status="arrived",
            raw_code="1",
            classifier="EST",
            references=rail_1,
            location="DEDUI",
            container="CSQU3054383",
            remarks="ETA Duisburg DUSS terminal: track 7, slot ref A?17; DTM 132 202603181200+0100 (205)",
        ),
        tracking(
            "iftsta:CRRAIL:STA-2026-0417:9:2:1",
            occurred="2026-03-05T08:00:00Z",
            recorded="2026-03-05T08:30:00Z",
            status="delayed",
            raw_code="20",
            references=[("rail_waybill", "SMGS24081235"), ("container", "TGHU8123457")],
            location="KZDOS",
            container="TGHU8123457",
            remarks="Gauge change at Dostyk's yard postponed 24 h; DTM 334 202603051400+0600 (205)",
        ),
    ]


def test_custom_separators_from_una_and_zoneless_times_read_as_utc() -> None:
    references = [("cmr", "PL-2026-CMR-0093")]
    assert parsed(sample("iftsta_road_custom_una.edi")) == [
        tracking(
            "iftsta:ROADCO:CMR-STATUS-55:9:1:1",
            occurred="2026-03-01T07:00:00Z",
            recorded="2026-03-01T16:20:00Z",
            status="received",
            raw_code="13",
            references=references,
            location="PLWAW",
            remarks="DTM 334 202603010700 (203)",
        ),
        tracking(
            "iftsta:ROADCO:CMR-STATUS-55:9:1:2",
            occurred="2026-03-01T15:45:00Z",
            recorded="2026-03-01T16:20:00Z",
            status="delivered",
            raw_code="21",
            references=references,
            location="DEDUI",
            remarks="Signed by consignee^ 2 pallets re-wrapped* no shortage; location DC3-GATE4 (not a UN/LOCODE); DTM 334 202603011545 (203)",
        ),
    ]


def test_unknown_status_code_is_kept_raw_beside_status_unknown() -> None:
    references = [("bill_of_lading", "MAEU261234567"), ("container", "MSCU4715328")]
    assert parsed(sample("iftsta_unknown_code.edi")) == [
        tracking(
            "iftsta:SEACO:SEA-20260310-01:9:1:1",
            occurred="2026-03-10T06:45:12Z",
            recorded="2026-03-12T12:05:00Z",
            status="loaded",
            raw_code="48",
            references=references,
            location="CNSHA",
            container="MSCU4715328",
            transport_means="612W",
            remarks="DTM 334 20260310064512 (204)",
        ),
        tracking(
            "iftsta:SEACO:SEA-20260310-01:9:1:2",
            occurred="2026-03-12T12:00:00Z",
            recorded="2026-03-12T12:05:00Z",
            status="unknown",
            raw_code="31",
            references=references,
            container="MSCU4715328",
            transport_means="612W",
            remarks="DTM 334 20260312120000 (204)",
        ),
    ]


def test_bad_segment_tag_rejects_the_interchange_naming_the_segment() -> None:
    assert parsed(sample("malformed_bad_tag.edi")) == [
        Rejection("invalid_edifact", "segment 3: 'bgm' is not a segment tag (three capital letters, e.g. 'STS')")
    ]


def test_message_without_bgm_is_rejected_and_the_next_message_still_read() -> None:
    assert parsed(sample("malformed_missing_bgm.edi")) == [
        Rejection(
            "invalid_edifact",
            "message 'A1' (UNH at segment 2): the mandatory BGM must follow UNH, found DTM at segment 3",
        ),
        tracking(
            "iftsta:ROADCO:CMR-STATUS-56:9:1:1",
            occurred="2026-03-01T11:40:00Z",
            recorded="2026-03-01T12:00:00Z",
            status="delivered",
            raw_code="21",
            references=[("cmr", "PL-2026-CMR-0102")],
            location="DEHAM",
            remarks="DTM 334 202603011140 (203)",
        ),
    ]


def test_invalid_container_rejects_only_its_status() -> None:
    assert parsed(sample("malformed_invalid_container.edi")) == [
        Rejection(
            "invalid_event",
            "message 'C1' (UNH at segment 2), consignment 1 (CNI at segment 5), status 1 (STS at segment 6): "
            "EQD at segment 9: container number 'CSQU3054384' fails its ISO 6346 check digit (expected 3)",
        ),
        tracking(
            "iftsta:SEACO:SEA-20260311-02:9:1:2",
            occurred="2026-03-11T08:15:00Z",
            recorded="2026-03-11T09:00:00Z",
            status="discharged",
            raw_code="29",
            references=[("bill_of_lading", "MAEU261234999"), ("container", "CAIU7022111")],
            location="SGSIN",
            container="CAIU7022111",
            remarks="DTM 334 202603110815 (203)",
        ),
    ]


def test_interchange_cut_off_mid_segment_is_rejected() -> None:
    assert parsed(sample("malformed_truncated.edi")) == [
        Rejection(
            "invalid_edifact",
            "segment 11 is not closed by the segment terminator \"'\" (is the interchange cut short?)",
        )
    ]


def test_the_same_interchange_twice_gives_the_same_event_ids() -> None:
    first, again = parse(sample("iftsta_rail.edi"), SOURCE), parse(sample("iftsta_rail.edi"), SOURCE)
    assert first == again


def test_the_same_messages_re_sent_in_a_new_interchange_keep_their_ids() -> None:
    # On 4c7e811 the UNB and UNH control references were part of every id, so the retransmission counted twice.
    first = parse(sample("iftsta_rail.edi"), SOURCE)
    resent = parse(sample("iftsta_rail.edi").replace(b"RAIL0000417", b"RAIL0000418").replace(b"M0417", b"M0499"), SOURCE)
    assert resent == first


def test_a_different_document_number_or_sender_is_a_different_status() -> None:
    first = {e.event_id for e in parse(sample("iftsta_rail.edi"), SOURCE) if isinstance(e, TrackingEvent)}
    for change in ((b"STA-2026-0417", b"STA-2026-0418"), (b"+CRRAIL:ZZZ", b"+CRRAIL2:ZZZ")):
        other = parse(sample("iftsta_rail.edi").replace(*change), SOURCE)
        assert {e.event_id for e in other if isinstance(e, TrackingEvent)}.isdisjoint(first)


def test_every_dtm_qualifier_of_a_status_and_the_header_texts_are_kept() -> None:
    raw = interchange(
        "BGM+23+DOC1+9", "FTX+AAI+++Reefer set to 4 C", "CNI+1+CMR1", "STS+1+24", "RFF+CMR:PL-CMR-1",
        "DTM+186:202603011130:203", "DTM+132:202603021800:203",
    )
    [event] = parse(raw, SOURCE)
    assert isinstance(event, TrackingEvent) and event.classifier == "ACT"
    assert event.payload.remarks == "Reefer set to 4 C; DTM 186 202603011130 (203); DTM 132 202603021800 (203)"


def test_a_message_without_a_bgm_document_number_is_rejected() -> None:
    assert parsed(interchange("BGM+23++9", *STATUS[1:])) == [
        Rejection(
            "invalid_edifact",
            "message 'M1' (UNH at segment 2): BGM has no document number (element 2): with the sender, it identifies "
            "the message's statuses",
        )
    ]


# --- syntax ------------------------------------------------------------------------------------------------------


def test_release_character_escapes_each_service_character() -> None:
    [segment] = tokenize("UNA:+.? 'FTX+a?:b?+c?'d??e:f'")
    assert segment.tag == "FTX"
    assert segment.elements == (("a:b+c'd?e", "f"),)


def test_custom_una_separators_are_used_instead_of_the_defaults() -> None:
    [segment] = tokenize("UNA|*.! #RFF*CMR|A+B:C'D!#E#\n")
    assert segment.elements == (("CMR", "A+B:C'D#E"),)


def test_line_breaks_after_terminators_are_ignored_but_other_text_is_not() -> None:
    assert [s.tag for s in tokenize("UNB+X'\r\nUNH+Y'\n\n")] == ["UNB", "UNH"]
    assert parsed(b"UNB+X'\nUNH+Y") == [
        Rejection(
            "invalid_edifact", "segment 2 is not closed by the segment terminator \"'\" (is the interchange cut short?)"
        )
    ]


def test_release_character_at_the_end_is_rejected_with_its_segment_number() -> None:
    assert parsed(b"UNB+UNOC:3+A+B+260301:1200+R1'UNH+1?") == [
        Rejection(
            "invalid_edifact",
            "segment 2: the data ends with the release character '?', "
            "which must be followed by the character it releases",
        )
    ]


def test_una_giving_one_character_two_roles_is_rejected() -> None:
    assert parsed(b"UNA::.? 'UNB+X'") == [
        Rejection(
            "invalid_edifact",
            "the UNA service string advice \"::.? '\" gives one character two roles "
            "(component, element, release, terminator)",
        )
    ]


def test_una_without_release_character_takes_question_marks_literally() -> None:
    [segment] = tokenize("UNA:+.  'FTX+why?'")
    assert segment.elements == (("why?",),)


def test_latin_1_interchange_is_decoded() -> None:
    raw = interchange(*STATUS, "FTX+AAI+++Empfänger?: Müller").decode().encode("latin-1")
    [event] = parse(raw, SOURCE)
    assert isinstance(event, TrackingEvent) and event.payload.remarks == "Empfänger: Müller; DTM 334 202603011130 (203)"


# --- envelope and structure --------------------------------------------------------------------------------------


def test_empty_payload_is_one_rejection() -> None:
    assert parsed(b" \r\n") == [Rejection("empty", "the payload is empty")]


def test_oversized_payload_is_refused_before_reading() -> None:
    [rejection] = parse(b"'" * (1024 * 1024 + 1), SOURCE)
    assert rejection == Rejection("too_large", "interchange is 1048577 bytes; the limit is 1048576")


def test_interchange_without_unz_is_rejected() -> None:
    raw = interchange(*STATUS).rsplit(b"\nUNZ", 1)[0]
    assert parsed(raw) == [Rejection("invalid_edifact", "the interchange has no UNZ trailer: it is cut short")]


def test_unz_counting_the_wrong_number_of_messages_is_rejected() -> None:
    raw = interchange(*STATUS).replace(b"UNZ+1+", b"UNZ+2+")
    assert parsed(raw) == [
        Rejection("invalid_edifact", "UNZ at segment 9 counts '2' messages but the interchange has 1")
    ]


def test_unt_counting_the_wrong_number_of_segments_rejects_the_message() -> None:
    raw = interchange(*STATUS).replace(b"UNT+7+", b"UNT+6+")
    assert parsed(raw) == [
        Rejection(
            "invalid_edifact",
            "message 'M1' (UNH at segment 2): UNT at segment 8 counts '6' segments but the message has 7 (UNH to UNT)",
        )
    ]


def test_segment_outside_any_message_is_rejected() -> None:
    raw = interchange(*STATUS).replace(b"UNZ", b"FTX+AAI+++stray'\nUNZ")
    assert parsed(raw) == [
        Rejection("invalid_edifact", "FTX at segment 9 stands outside any message (between UNB/UNT and the next UNH)")
    ]


def test_message_other_than_iftsta_is_refused() -> None:
    raw = interchange(*STATUS).replace(b"IFTSTA", b"IFTMIN")
    assert parsed(raw) == [
        Rejection("unsupported_message", "message 'M1' (UNH at segment 2): is 'IFTMIN'; this parser reads IFTSTA")
    ]


def test_replacement_or_cancellation_message_is_refused() -> None:
    raw = interchange(*STATUS).replace(b"BGM+23+DOC1+9", b"BGM+23+DOC1+1")
    assert parsed(raw) == [
        Rejection(
            "unsupported_message",
            "message 'M1' (UNH at segment 2): BGM message function '1' is not read: only original status reports (9) "
            "are; send corrections as a new original report",
        )
    ]


def test_repeated_bgm_document_in_one_interchange_is_rejected() -> None:
    text = interchange(*STATUS).decode()
    message = text[text.index("UNH") : text.index("UNZ")].replace("M1", "M2")
    raw = text.replace("UNZ+1", message + "UNZ+2").encode()
    results = parsed(raw)
    assert results[1:] == [
        Rejection(
            "invalid_edifact",
            "message 'M2' (UNH at segment 9) repeats BGM document 'DOC1' of an earlier message in the interchange",
        )
    ]


def test_consignment_without_status_is_rejected() -> None:
    raw = interchange("BGM+23+DOC1+9", "CNI+1+CMR0", *STATUS[1:])
    results = parsed(raw)
    assert results[0] == Rejection(
        "invalid_edifact",
        "message 'M1' (UNH at segment 2), consignment 1 (CNI at segment 4): no STS status follows the CNI",
    )
    assert isinstance(results[1], dict) and results[1]["event_id"] == "iftsta:TESTCO:DOC1:9:2:1"


# --- one status ----------------------------------------------------------------------------------------------------

WHERE = "message 'M1' (UNH at segment 2), consignment 1 (CNI at segment 4), status 1 (STS at segment 5)"


def status_result(*group: str, header: tuple[str, ...] = ()) -> Doc | Rejection:
    [result] = parsed(interchange("BGM+23+DOC1+9", *header, "CNI+1+CMR1", "STS+1+21", *group))
    return result


def test_status_without_event_time_is_rejected() -> None:
    assert status_result("RFF+CMR:PL-CMR-1") == Rejection(
        "invalid_edifact",
        f"{WHERE}: no event time: a status needs a DTM with qualifier 334 (status change date/time) or another "
        "event-time qualifier (17, 35, 76, 78, 132, 133, 136, 143, 178, 186, 189, 191, 232, 334)",
    )


def test_unread_date_format_is_rejected_with_the_formats_that_are_read() -> None:
    assert status_result("RFF+CMR:PL-CMR-1", "DTM+334:20260301:102") == Rejection(
        "invalid_edifact",
        f"{WHERE}: DTM at segment 7: '20260301' with format '102' is not read; send format 203 (CCYYMMDDHHMM), "
        "204 (CCYYMMDDHHMMSS) or 205 (CCYYMMDDHHMM?+HHMM, with its offset from UTC)",
    )


def test_impossible_date_is_rejected() -> None:
    assert status_result("RFF+CMR:PL-CMR-1", "DTM+334:202613011130:203") == Rejection(
        "invalid_edifact", f"{WHERE}: DTM at segment 7: '202613011130' is not a real date and time in format 203"
    )


def test_zoned_time_is_converted_to_utc() -> None:
    result = status_result("RFF+CMR:PL-CMR-1", "DTM+334:202603010130-0530:205")
    assert isinstance(result, dict) and result["occurred_at"] == "2026-03-01T07:00:00Z"


def test_actual_time_wins_over_an_estimate_in_the_same_status() -> None:
    result = status_result("RFF+CMR:PL-CMR-1", "DTM+132:202603051200:203", "DTM+186:202603011000:203")
    assert isinstance(result, dict)
    assert (result["occurred_at"], result["classifier"]) == ("2026-03-01T10:00:00Z", "ACT")


def test_scheduled_time_makes_a_planned_status() -> None:
    result = status_result("RFF+CMR:PL-CMR-1", "DTM+189:202603011000:203")
    assert isinstance(result, dict) and result["classifier"] == "PLN"


def test_document_date_in_the_header_is_recorded_at() -> None:
    result = status_result("RFF+CMR:PL-CMR-1", "DTM+334:202603010900:203", header=("DTM+137:202603011015:203",))
    assert isinstance(result, dict) and result["recorded_at"] == "2026-03-01T10:15:00Z"


def test_header_references_apply_to_every_status_and_unknown_qualifiers_are_ignored() -> None:
    group = ("RFF+CU:SHIPPER-REF-9", "RFF+BN:BKG-77", "DTM+334:202603010900:203")
    result = status_result(*group, header=("RFF+BM:MAEU1",))
    assert isinstance(result, dict)
    assert result["references"] == [
        {"kind": "bill_of_lading", "value": "MAEU1"},
        {"kind": "carrier_booking", "value": "BKG-77"},
    ]


def test_status_naming_no_reference_is_rejected() -> None:
    assert status_result("RFF+CU:SHIPPER-REF-9", "DTM+334:202603010900:203") == Rejection(
        "invalid_event",
        f"{WHERE}: names nothing the hub can find the shipment by: add an EQD+CN container or an RFF with qualifier "
        "BM, AEX, CMR, RCN, AWB, BN, FF, AAJ, AAK, DQ, ON, VN (in the status group or the message header)",
    )


def test_business_transactions_keep_their_rff_qualifier_as_type() -> None:
    # Issue 14: the raw business-transaction type is a structured field (on eeb4899 RFF+AAJ and RFF+ON were dropped).
    result = status_result("RFF+AAJ:DO-7781", "RFF+ON:PO/2026/17", "RFF+ON:PO 17", "DTM+334:202603010900:203")
    assert isinstance(result, dict)
    assert result["references"] == [
        {"kind": "business_transaction", "value": "DO-7781", "type": "AAJ"},
        {"kind": "business_transaction", "value": "PO/2026/17", "type": "ON"},
    ]  # "PO 17" does not fit the reference syntax: it names nothing the hub can resolve, and is left out


def test_reference_the_schema_refuses_is_rejected_with_the_schema_reason() -> None:
    result = status_result("RFF+CMR:PL CMR 1", "DTM+334:202603010900:203")
    assert isinstance(result, Rejection) and result.code == "invalid_event"
    assert result.reason.startswith(f"{WHERE}: tracking.references.0.value: String should match pattern")


def test_event_id_falls_back_to_a_hash_for_document_numbers_the_id_syntax_cannot_carry() -> None:
    [result] = parsed(interchange("BGM+23+DOC 1/2+9", *STATUS[1:]))
    token = "h" + hashlib.sha256(b"DOC 1/2").hexdigest()[:16]
    assert isinstance(result, dict) and result["event_id"] == f"iftsta:TESTCO:{token}:9:1:1"


# --- never raises, never hangs -----------------------------------------------------------------------------------

SAMPLE_NAMES = sorted(path.name for path in SAMPLES.iterdir())
ELEMENT_DATA = st.text("0123456789ABCDEFMNRSTUZ:-?. ", max_size=16) | st.sampled_from(["1", "334:2026", "CN", "BM:"])
SERVICE = st.sampled_from(list("'+:?\n") + ["UNA:+.? '", "UNT+1+1'", "UNZ+1+X'", "STS+1+21'", "DTM+334:"])


def assert_well_formed(results: list[Any]) -> None:
    events = well_formed_events(results)
    ids = [tracked.event_id for tracked in events]
    assert len(ids) == len(set(ids)), "one status, one identity"
    for tracked in events:
        assert tracked.source == SOURCE and tracked.payload.code_list == "UNECE-Rec24" and tracked.payload.leg is None


@FUZZ
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    assert_well_formed(parse(raw, SOURCE))


@st.composite
def mutated_samples(draw: st.DrawFn) -> bytes:
    """A sample with 1-4 edits: bytes cut, inserted or replaced, an element's data rewritten, whole segments dropped,
    repeated or swapped."""
    raw = bytearray(sample(draw(st.sampled_from(SAMPLE_NAMES))))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(raw)))
        edit = draw(st.sampled_from(["cut", "insert", "replace", "element", "segments"]))
        if edit == "element":
            # Data changes that keep the structure (and so the counts) intact reach the per-status mapping.
            segments = bytes(raw).split(b"'")
            index = draw(st.integers(0, max(len(segments) - 1, 0)))
            elements = segments[index].split(b"+")
            position = draw(st.integers(1, max(len(elements) - 1, 1)))
            data = draw(ELEMENT_DATA)
            elements[position:position + 1] = [data.encode()]
            segments[index] = b"+".join(elements)
            raw = bytearray(b"'".join(segments))
        elif edit == "cut":
            del raw[at : at + draw(st.integers(1, 40))]
        elif edit == "insert":
            text = draw(SERVICE | st.text(max_size=8))
            raw[at:at] = text.encode()
        elif edit == "replace" and at < len(raw):
            raw[at] = draw(st.integers(0, 255))
        elif edit == "segments":
            segments = bytes(raw).split(b"'")
            index = draw(st.integers(0, max(len(segments) - 1, 0)))
            other = draw(st.integers(0, max(len(segments) - 1, 0)))
            action = draw(st.sampled_from(["drop", "repeat", "swap"]))
            if action == "drop":
                del segments[index]
            elif action == "repeat":
                segments.insert(other, segments[index])
            else:
                segments[index], segments[other] = segments[other], segments[index]
            raw = bytearray(b"'".join(segments))
    return bytes(raw)


@FUZZ
@given(mutated_samples())
def test_mutated_samples_never_raise(raw: bytes) -> None:
    results = parse(raw, SOURCE)
    assert_well_formed(results)
    for result in results:
        event(result.code if isinstance(result, Rejection) else "event")


@given(
    interchange_refs=st.lists(st.sampled_from(["RAIL0000417", "RAIL0000418", "X9"]), min_size=1, max_size=5),
    shuffle=st.randoms(use_true_random=False),
)
def test_retransmissions_in_new_interchanges_in_any_order_count_once(interchange_refs: list[str], shuffle: Any) -> None:
    once = [e for e in parse(sample("iftsta_rail.edi"), SOURCE) if isinstance(e, TrackingEvent)]
    sent = [
        e
        for ref in interchange_refs
        for e in parse(sample("iftsta_rail.edi").replace(b"RAIL0000417", ref.encode()), SOURCE)
        if isinstance(e, TrackingEvent)
    ]
    shuffle.shuffle(sent)
    expected_state = apply_all(ShipmentState("SHP-T-1"), [addressed(e, "SHP-T-1") for e in once])
    state = apply_all(ShipmentState("SHP-T-1"), [addressed(e, "SHP-T-1") for e in sent])
    assert state.version == expected_state.version == len(once)
    assert project(state, AUTHORITY) == project(expected_state, AUTHORITY)


def test_the_forwarders_reference_is_kept_as_a_reference() -> None:
    # On 4c7e811 RFF+FF was skipped: an MTO's own reference could not name the shipment.
    result = status_result("RFF+FF:MTO-44-0007", "DTM+334:202603010900:203")
    assert isinstance(result, dict)
    assert result["references"] == [{"kind": "forwarder_reference", "value": "MTO-44-0007"}]
