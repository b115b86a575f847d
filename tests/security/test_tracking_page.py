"""The tracking page (connectors.gateway.tracking) as an attacker sees it.

- The page is one static document, the same bytes for every id and without a token: it tells nobody whether a
  shipment exists. It and its assets carry a Content-Security-Policy that allows only the gateway's own script,
  style and connections: no inline script, no other origin, no form action, no framing.
- The reader token never travels in a URL (where proxies, logs, history and Referer headers would keep it): the
  page sends it only in the Authorization header of its requests to the reader API, and the API does not take one
  from the query string.
- Text from the record (a carrier's raw codes, the cargo's description) is shown as text, never run.
- A delegate's open page, once its grant is revoked, drops what it showed and says "Not found".

On the base commit (eeb4899) there is no page: /track answers 404, so every test here fails there.
"""

from __future__ import annotations

import re
from typing import Awaitable, Callable

import pytest
from playwright.async_api import Browser, Request, expect

from hubconf.settings import Settings
from tests.browser.chromium import PHONE
from tests.security.gateway_app import RECORD, TOKENS, auth, project, served

pytestmark = pytest.mark.integration

NewSettings = Callable[..., Awaitable[Settings]]
SHIPPER, BROKER = "shipper.chengdu-elec", "broker.customs-jb"
SHIPMENT = RECORD.shipment_id
ASSETS = ("/track/assets/track.js", "/track/assets/track.css", "/track/assets/icon.svg")


def directives(policy: str) -> dict[str, list[str]]:
    parsed = [part.split() for part in policy.split(";") if part.strip()]
    return {words[0]: words[1:] for words in parsed}


async def test_the_page_is_one_static_document_behind_a_strict_content_security_policy(hub_settings: NewSettings) -> None:
    async with served(await hub_settings()) as app:
        bodies = set()
        for path in (f"/track/{SHIPMENT}", "/track/SHP-2026-999999", "/track"):
            async with app.client.get(path) as response:  # no token at all
                assert response.status == 200 and response.content_type == "text/html"
                page = await response.text()
                headers = response.headers
            bodies.add(page)
            policy = directives(headers["Content-Security-Policy"])
            print(f"{path}: Content-Security-Policy: {headers['Content-Security-Policy']}")
            assert policy["default-src"] == ["'none'"]
            for kind in ("script-src", "style-src", "connect-src", "img-src"):
                assert policy[kind] == ["'self'"], (kind, policy[kind])
            assert policy["form-action"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]
            assert policy["base-uri"] == ["'none'"]
            assert headers["Referrer-Policy"] == "no-referrer" and headers["X-Content-Type-Options"] == "nosniff"
            assert headers["Cache-Control"] == "no-store" and headers["X-Frame-Options"] == "DENY"
        (page,) = bodies  # the same bytes whatever the id: nothing about the shipment, not even whether it exists
        assert SHIPMENT not in page and RECORD.shipper is not None and RECORD.shipper.name not in page
        assert all(re.search(r'\bsrc="/track/assets/', tag) for tag in re.findall(r"<script\b[^>]*>", page))
        assert not re.search(r"<style\b|\sstyle=|\son[a-z]+=", page)  # nothing inline the policy would have to allow
        for asset in ASSETS:
            async with app.client.get(asset) as response:
                assert response.status == 200
                assert response.headers["X-Content-Type-Options"] == "nosniff"
                assert "Content-Security-Policy" in response.headers
        for probe in ("/track/assets/..%2Ftracking.py", "/track/assets/tracking.py", "/track/assets/track.html"):
            async with app.client.get(probe) as response:
                assert response.status == 404, probe


async def test_the_token_travels_only_in_the_authorization_header_never_in_a_url(
    hub_settings: NewSettings, browser: Browser
) -> None:
    token = TOKENS[SHIPPER]
    async with served(await hub_settings()) as app:
        base = str(app.client.make_url("")).rstrip("/")
        context = await browser.new_context(viewport=PHONE)
        page = await context.new_page()
        requests: list[Request] = []
        page.on("request", lambda request: requests.append(request))
        await page.goto(f"{base}/track/{SHIPMENT}")
        await page.get_by_label("Reader token").fill(token)
        await page.get_by_role("button", name="Show the shipment").click()
        await expect(page.locator("#shipment[data-version]")).to_be_visible(timeout=30_000)

        sent = [(r.url, await r.all_headers()) for r in requests]
        print("requests:", *(url for url, _ in sent), sep="\n  ")
        assert all(token not in url for url, _ in sent)
        carrying = [(url, name) for url, headers in sent for name, value in headers.items() if token in value]
        assert carrying == [(f"{base}/v1/shipments/{SHIPMENT}/live", "authorization")]
        assert token not in page.url and token not in await page.content()
        assert token not in await page.evaluate("() => document.cookie + location.href + history.length")
        await context.close()

        for name in ("token", "access_token", "authorization"):  # the API takes no token from the query string
            async with app.client.get(f"/v1/shipments/{SHIPMENT}", params={name: token}) as response:
                assert response.status == 401, name
        async with app.client.get(f"/v1/shipments/{SHIPMENT}", headers=auth(SHIPPER)) as response:
            assert response.status == 200  # the same token in the header is good


HOSTILE_CARGO = '<img src=x onerror="document.title=\'pwned\'">'
HOSTILE_CODE = "<script>document.title=1</script>"


async def test_text_from_the_record_is_shown_as_text_and_never_run(hub_settings: NewSettings, browser: Browser) -> None:
    assert RECORD.booking is not None
    leg = RECORD.legs[0]
    hostile = RECORD.model_copy(update={
        "version": RECORD.version + 1,
        "booking": RECORD.booking.model_copy(update={
            "cargo": RECORD.booking.cargo.model_copy(update={"description": HOSTILE_CARGO}),
        }),
        "legs": [leg.model_copy(update={
            "milestones": [leg.milestones[0].model_copy(update={"raw_code": HOSTILE_CODE}), *leg.milestones[1:]],
        }), *RECORD.legs[1:]],
    })
    settings = await hub_settings()
    async with served(settings) as app:
        await project(settings, hostile)
        base = str(app.client.make_url("")).rstrip("/")
        context = await browser.new_context(viewport=PHONE)
        page = await context.new_page()
        await page.goto(f"{base}/track/{SHIPMENT}")
        title = await page.title()
        await page.get_by_label("Reader token").fill(TOKENS[SHIPPER])
        await page.get_by_role("button", name="Show the shipment").click()
        await expect(page.locator("#shipment")).to_have_attribute("data-version", str(hostile.version), timeout=30_000)
        await page.locator("#leg-1-milestones summary").click()
        await expect(page.locator("#summary")).to_contain_text(HOSTILE_CARGO)
        await expect(page.locator("#leg-1-milestones")).to_contain_text(HOSTILE_CODE)
        assert await page.locator("#shipment img, #shipment script").count() == 0
        assert await page.title() == title
        await context.close()


async def test_an_open_page_of_a_revoked_delegate_empties_itself_and_shows_not_found(
    hub_settings: NewSettings, browser: Browser
) -> None:
    async with served(await hub_settings()) as app:
        async with app.client.post(
            f"/v1/shipments/{SHIPMENT}/grants", headers=auth(SHIPPER),
            data=b'{"grantee": "broker.customs-jb", "grades": ["public", "operational"]}',
        ) as response:
            assert response.status == 201
            grant = await response.json()
        base = str(app.client.make_url("")).rstrip("/")
        context = await browser.new_context(viewport=PHONE)
        page = await context.new_page()
        await page.goto(f"{base}/track/{SHIPMENT}")
        await page.get_by_label("Reader token").fill(TOKENS[BROKER])
        await page.get_by_role("button", name="Show the shipment").click()
        await expect(page.locator("#legs .leg-item")).to_have_count(len(RECORD.legs), timeout=30_000)
        await expect(page.locator("#billing")).to_have_count(0)  # the grant gave public and operational only

        async with app.client.delete(f"/v1/grants/{grant['grant_id']}", headers=auth(SHIPPER)) as response:
            assert response.status == 200

        await expect(page.get_by_role("heading", level=1, name="Not found")).to_be_visible(timeout=30_000)
        assert await page.locator("#shipment").inner_html() == ""
        assert RECORD.legs[0].origin not in await page.locator("body").inner_text()
        await context.close()
