"""The dispatcher's decisions: signatures, Retry-After, backoff, batch halving, and what each answer leads to."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.webhooks.delivery import (
    SIGNATURE,
    SIGNATURE_PREVIOUS,
    SUBSCRIPTION_ID,
    Answer,
    Delivered,
    Failed,
    Isolate,
    Pending,
    Shrink,
    WebhookConfig,
    backoff,
    body,
    decide,
    detail,
    halve,
    headers,
    retry_after,
    signature,
    verify,
)
from connectors.webhooks.notifications import Subscription

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
CONFIG = WebhookConfig(max_attempts=3, retry_for_s=3600, backoff_base_s=1.0, backoff_cap_s=60.0, max_retry_after_s=600)


def batch(size: int, attempts: int = 0, first_failed_at: datetime | None = None) -> list[Pending]:
    return [Pending(seq, f"p/S/{seq}/status/", {"kind": "status"}, attempts, first_failed_at) for seq in range(1, size + 1)]


# --- signatures -----------------------------------------------------------------------------------------------------


def test_signature_is_the_hex_hmac_sha256_of_the_body() -> None:
    # RFC 4231, test case 2
    assert signature("Jefe", b"what do ya want for nothing?") == (
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )


def test_verify_accepts_only_the_same_secret_and_the_same_bytes() -> None:
    raw = b'{"subscription_id":"whs_1","notifications":[]}'
    header = signature("whsec_a", raw)
    assert verify("whsec_a", raw, header)
    assert not verify("whsec_b", raw, header)
    assert not verify("whsec_a", raw + b" ", header)
    assert not verify("whsec_a", raw, None)


def test_headers_sign_with_the_previous_secret_only_during_its_grace() -> None:
    subscription = Subscription(
        "whs_1", "shipper.chengdu-elec", "https://example.com/hook", "whsec_new", NOW,
        previous_secret="whsec_old", previous_secret_until=NOW + timedelta(hours=1),
    )
    raw = b"[]"
    during = headers(subscription, raw, NOW)
    assert during[SUBSCRIPTION_ID] == "whs_1"
    assert verify("whsec_new", raw, during[SIGNATURE])
    assert verify("whsec_old", raw, during[SIGNATURE_PREVIOUS])
    assert SIGNATURE_PREVIOUS not in headers(subscription, raw, NOW + timedelta(hours=1))


def test_the_body_carries_each_notification_with_its_id_and_seq_in_order() -> None:
    rows = [Pending(7, "p/S/1/status/", {"kind": "status", "version": 1}), Pending(9, "p/S/2/status/", {"kind": "status", "version": 2})]
    document = orjson.loads(body("whs_1", rows))
    assert document["subscription_id"] == "whs_1"
    assert [(n["notification_id"], n["seq"], n["version"]) for n in document["notifications"]] == [
        ("p/S/1/status/", 7, 1), ("p/S/2/status/", 9, 2),
    ]


# --- Retry-After, backoff, halving ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 5 ", 5.0),
        ("0", 0.0),
        ("Mon, 01 Jun 2026 12:00:30 GMT", 30.0),
        ("Mon, 01 Jun 2026 11:00:00 GMT", 0.0),  # a date in the past: now
        ("Monday, 01-Jun-26 12:01:00 GMT", 60.0),  # RFC 850, still allowed to senders of old
        (None, None),
        ("", None),
        ("soon", None),
        ("-1", None),
        ("1.5", None),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(header: str | None, seconds: float | None) -> None:
    assert retry_after(header, NOW) == seconds


@given(st.integers(min_value=1, max_value=10_000), st.floats(min_value=0, max_value=1, exclude_max=True))
def test_backoff_stays_between_half_and_all_of_its_capped_ceiling(failures: int, unit: float) -> None:
    wait = backoff(failures, 0.5, 60.0, unit)
    ceiling = min(60.0, 0.5 * 2 ** min(failures - 1, 60))
    assert ceiling / 2 <= wait <= ceiling


def test_backoff_doubles_until_the_cap() -> None:
    assert [backoff(n, 1.0, 60.0, 0.999999) for n in range(1, 9)] == pytest.approx([1, 2, 4, 8, 16, 32, 60, 60], rel=1e-5)
    assert [backoff(n, 1.0, 60.0, 0.0) for n in range(1, 4)] == [0.5, 1.0, 2.0]


def test_halving_reaches_one_and_stays() -> None:
    sizes = [50]
    while sizes[-1] > 1:
        sizes.append(halve(sizes[-1]))
    assert sizes == [50, 25, 12, 6, 3, 1]
    assert halve(1) == 1


# --- decisions ------------------------------------------------------------------------------------------------------


def test_any_2xx_delivers() -> None:
    for status in (200, 201, 202, 204):
        assert decide(Answer(status, f"http_{status}", ""), batch(3), NOW, CONFIG, 0.5) == Delivered()


def test_413_halves_the_batch_and_a_single_413_is_dead_at_once() -> None:
    assert decide(Answer(413, "http_413", "HTTP 413"), batch(50), NOW, CONFIG, 0.5) == Shrink(25)
    assert decide(Answer(413, "http_413", "HTTP 413"), batch(2), NOW, CONFIG, 0.5) == Shrink(1)
    single = decide(Answer(413, "http_413", "HTTP 413: too big"), batch(1), NOW, CONFIG, 0.5)
    assert isinstance(single, Failed)
    assert [(r.seq, r.dead) for r in single.rows] == [(1, True)]
    assert single.rows[0].error == "http_413 (refused as too large even alone)"


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured_on_429_and_503(status: int) -> None:
    decision = decide(Answer(status, f"http_{status}", f"HTTP {status}", 7.0), batch(4), NOW, CONFIG, 0.5)
    assert isinstance(decision, Failed)
    assert decision.wait_s == 7.0
    assert all(not r.dead and r.next_attempt_at == NOW + timedelta(seconds=7) for r in decision.rows)
    assert [r.seq for r in decision.rows] == [1, 2, 3, 4]


def test_a_huge_retry_after_is_honoured_only_up_to_the_cap() -> None:
    decision = decide(Answer(503, "http_503", "HTTP 503", 86_400.0), batch(1), NOW, CONFIG, 0.5)
    assert isinstance(decision, Failed) and decision.wait_s == CONFIG.max_retry_after_s


@pytest.mark.parametrize("answer", [Answer(None, "refused", "ClientConnectorError: refused"), Answer(500, "http_500", "HTTP 500"),
                                    Answer(503, "http_503", "HTTP 503"), Answer(408, "http_408", "HTTP 408"), Answer(429, "http_429", "HTTP 429")])
def test_an_unreachable_or_failing_subscriber_is_retried_with_backoff(answer: Answer) -> None:
    decision = decide(answer, batch(5, attempts=2), NOW, CONFIG, 0.0)
    assert isinstance(decision, Failed)
    assert decision.wait_s == backoff(3, CONFIG.backoff_base_s, CONFIG.backoff_cap_s, 0.0) == 2.0
    assert all(not r.dead and r.error == answer.failure for r in decision.rows)


def test_an_unreachable_subscriber_is_given_up_on_only_after_the_retry_window() -> None:
    long_ago = NOW - timedelta(seconds=CONFIG.retry_for_s)
    rows = batch(1, attempts=40, first_failed_at=long_ago) + [Pending(2, "p/S/2/status/", {}, 0, None)]
    decision = decide(Answer(None, "refused", "ClientConnectorError: refused"), rows, NOW, CONFIG, 0.5)
    assert isinstance(decision, Failed)
    assert [(r.seq, r.dead) for r in decision.rows] == [(1, True), (2, False)]
    assert "gave up" in decision.rows[0].error and "refused" in decision.rows[0].error
    recent = decide(Answer(None, "refused", "ClientConnectorError: refused"), batch(1, 1000, NOW - timedelta(minutes=59)), NOW, CONFIG, 0.5)
    assert isinstance(recent, Failed) and not recent.rows[0].dead  # many attempts, but within the window


@pytest.mark.parametrize("status", [400, 401, 404, 422, 301])
def test_a_refused_batch_sends_its_head_alone(status: int) -> None:
    assert decide(Answer(status, f"http_{status}", f"HTTP {status}"), batch(6), NOW, CONFIG, 0.5) == Isolate(1)


def test_a_refused_notification_is_dead_after_max_attempts() -> None:
    answer = Answer(422, "http_422", "HTTP 422: unknown shipment")
    first = decide(answer, batch(1, attempts=0), NOW, CONFIG, 0.0)
    assert isinstance(first, Failed) and not first.rows[0].dead
    assert first.rows[0].next_attempt_at == NOW + timedelta(seconds=0.5)
    last = decide(answer, batch(1, attempts=CONFIG.max_attempts - 1), NOW, CONFIG, 0.0)
    assert isinstance(last, Failed) and last.rows[0].dead
    # the party sees the class only, never the subscriber's answer: that goes to the operator's log
    assert last.rows[0].error == "http_422 (refused 3 times; gave up)"


def test_detail_keeps_the_start_of_the_answer_on_one_line() -> None:
    assert detail(503, "") == "HTTP 503"
    assert detail(422, "unknown\n  shipment") == "HTTP 422: unknown shipment"
    assert len(detail(400, "x" * 5000)) == len("HTTP 400: ") + 200


def test_signature_matches_a_plain_hmac_of_the_body() -> None:
    raw = body("whs_1", batch(2))
    expected = hmac.new(b"whsec_s", raw, hashlib.sha256).hexdigest()
    assert signature("whsec_s", raw) == f"sha256={expected}"
