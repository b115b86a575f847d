"""The tracking page in headless Chromium: it loads and shows the legs, follows a published event live without a
reload, shows a carrier only what the policy gives it (no rates), and shows an unknown and a not-entitled shipment
as the same "not found". Screenshots, at a phone's 390 px, go to test-artifacts/browser/."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest
from playwright.async_api import Browser, Page, expect

from connectors.kafka import publish, read_jsonl
from hubconf.settings import Settings
from tests.browser.chromium import PHONE, artifact
from tests.integration.hub import JOURNEY_ID, caught_up, journey_lines, offline, wait_for
from tests.integration.test_reader import Running
from tests.security.gateway_app import RECORD, TOKENS, project, served

pytestmark = pytest.mark.integration

SHIPPER, CONSIGNEE, RAIL, BROKER = "shipper.chengdu-elec", "consignee.johor-assembly", "carrier.cr-rail", "broker.customs-jb"
HELD_BACK = (b'"event_id":"t4-dlv"', b'"event_id":"ho-4-c"')  # leg 4's delivery: published while the page is open
UNKNOWN = "SHP-2026-999999"
CLAIM_JOURNEY = Path(__file__).resolve().parents[2] / "examples" / "journey-claim.jsonl"


@dataclass
class Tab:
    page: Page
    errors: list[str]  # what the page's script threw or logged as an error, and resources that failed to load


async def signed_in(browser: Browser, base: str, party: str, shipment_id: str) -> Tab:
    """A new phone-sized tab on the shipment's page, signed in as `party` through the page's own form."""
    context = await browser.new_context(viewport=PHONE)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    await page.goto(f"{base}/track/{shipment_id}")
    await page.get_by_label("Reader token").fill(TOKENS[party])
    await page.get_by_role("button", name="Show the shipment").click()
    return Tab(page, errors)


async def shown(page: Page) -> int:
    """Once the page shows a shipment: the record version it shows."""
    await expect(page.locator("#shipment[data-version]")).to_be_visible(timeout=30_000)
    return int(await page.locator("#shipment").get_attribute("data-version") or "0")


async def fits_the_phone(page: Page) -> None:
    """Nothing makes the page, or a table in it, wider than the phone's screen (no sideways scrolling to read it)."""
    width = await page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert width == [PHONE["width"], PHONE["width"]], f"page {width[0]} px wide on a {width[1]} px screen"
    wide = await page.evaluate(
        "() => [...document.querySelectorAll('.table-scroll')].filter((s) => s.scrollWidth > s.clientWidth)"
        ".map((s) => `${s.querySelector('caption').textContent}: ${s.scrollWidth} px in ${s.clientWidth} px`)"
    )
    assert wide == [], f"tables that scroll sideways on the phone: {wide}"


# WCAG 2.1's contrast ratio of each visible piece of text (HTML text and the route's SVG labels) against the first
# opaque background behind it: at least 4.5:1, or 3:1 for large text (24 px, or 18.66 px bold). The page draws no
# background images behind text, so the colours are all there is.
LOW_CONTRAST = """() => {
  const rgba = (text) => (text.match(/[\\d.]+/g) || []).map(Number);
  const luminance = ([r, g, b]) => {
    const [R, G, B] = [r, g, b].map((c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * R + 0.7152 * G + 0.0722 * B;
  };
  const behind = (element) => {
    for (let at = element; at; at = at.parentElement) {
      const colour = rgba(getComputedStyle(at).backgroundColor);
      if (colour.length === 3 || colour[3] === 1) return colour.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const low = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const element = node.parentElement;
    if (!node.textContent.trim() || !element || !element.getClientRects().length) continue;
    const style = getComputedStyle(element);
    if (style.visibility === 'hidden' || style.display === 'none' || element.closest('[hidden], .visually-hidden, .sr-only')) continue;
    const svg = element instanceof SVGElement;
    const fore = rgba(svg ? style.fill : style.color).slice(0, 3);
    const [a, b] = [luminance(fore), luminance(behind(element))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const size = parseFloat(style.fontSize), bold = parseInt(style.fontWeight, 10) >= 700;
    const needed = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    if (ratio < needed) low.push(`${node.textContent.trim().slice(0, 30)}: ${ratio.toFixed(2)} < ${needed}`);
  }
  return low;
}"""


async def readable(page: Page) -> None:
    """Every visible piece of text has the contrast WCAG 2.1 AA asks for (LOW_CONTRAST lists what does not)."""
    counted = await page.evaluate("() => document.body.innerText.trim().length")
    assert counted > 0, "no text to check"
    assert await page.evaluate(LOW_CONTRAST) == []


def amounts(node: Any) -> set[str]:
    """Every money amount anywhere under `node` (a record dumped to JSON)."""
    if isinstance(node, dict):
        found = {node["amount"]} if set(node) >= {"amount", "currency"} and isinstance(node["amount"], str) else set()
        return found.union(*(amounts(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(amounts(item) for item in node))
    return set()


async def test_the_shippers_page_shows_the_legs_and_follows_a_published_event_without_a_reload(
    running: Running, browser: Browser
) -> None:
    """`mmhub worker`, `sink` and `gateway` (the reader tests' `running`) with the journey but leg 4's delivery."""
    lines = journey_lines()
    held = [line for line in lines if any(marker in line for marker in HELD_BACK)]
    assert len(held) == 2
    early = [line for line in lines if line not in held]
    before, after = offline(early)[JOURNEY_ID], offline(lines)[JOURNEY_ID]
    await publish(running.settings, early)
    await wait_for(lambda: caught_up(running.settings, {JOURNEY_ID: before}), 120, "the projection", *running.procs)

    tab = await signed_in(browser, running.base, SHIPPER, JOURNEY_ID)
    page = tab.page
    assert await shown(page) == before.version
    legs = page.locator("#legs .leg-item")
    await expect(legs).to_have_count(4)
    for leg, item in zip(before.legs, await legs.all()):
        await expect(item.get_by_role("heading", level=3)).to_have_text(f"Leg {leg.sequence}: {leg.origin} → {leg.destination}")
        await expect(item).to_have_attribute("data-status", leg.status)
    await expect(page.locator("svg.route g.leg")).to_have_count(4)
    await expect(page.locator("svg.route g.node")).to_have_count(5)
    await expect(page.locator("#legs .leg-item[data-leg='4']")).to_have_attribute("data-status", "departed")
    await expect(page.locator("#billing")).to_contain_text("11945.34 CNY")  # the shipper may see its invoice
    await expect(page.locator("#document")).to_contain_text("WLC-MTD-260302-0042")
    await expect(page.locator("#custody li")).to_have_count(len(before.custody))
    await expect(page.get_by_role("heading", level=1)).to_be_focused()  # the page moved the focus to what it shows
    await page.keyboard.press("Tab")
    await expect(page.locator("#leg-1-milestones-toggle")).to_be_focused()
    toggle = page.locator("#leg-4-milestones-toggle")
    await toggle.focus()
    await page.keyboard.press("Enter")  # opens leg 4's milestones from the keyboard
    await expect(page.locator("#leg-4-milestones ol li")).to_have_count(len(before.legs[3].milestones))
    await page.evaluate("() => { window.sameDocument = 'not reloaded'; }")
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))

    await publish(running.settings, held)

    delivered = page.locator("#legs .leg-item[data-leg='4'][data-status='delivered']")
    await expect(delivered).to_be_visible(timeout=90_000)
    await expect(page.locator("#shipment")).to_have_attribute("data-version", str(after.version))
    await expect(page.locator("svg.route g.leg[data-leg='4']")).to_have_attribute("data-status", "delivered")
    await expect(page.locator("#announcer")).to_contain_text("leg 4 is now delivered")
    await expect(toggle).to_be_focused()  # the update kept the keyboard's place and the open milestones
    await expect(page.locator("#leg-4-milestones ol li")).to_have_count(len(after.legs[3].milestones))
    assert await page.evaluate("() => window.sameDocument") == "not reloaded" and navigations == []
    assert tab.errors == []
    await fits_the_phone(page)
    await readable(page)
    await page.screenshot(path=artifact("shipper-phone.png"), full_page=True)
    await page.context.close()


async def test_a_carriers_page_shows_its_own_leg_and_no_rates_and_a_consignees_no_invoice(hub_settings: Callable[..., Awaitable[Settings]],
                                                              browser: Browser) -> None:
    everything = RECORD.model_dump(mode="json")
    money = amounts({key: everything[key] for key in ("legs", "settlement", "journey_charges", "charges_total")})
    assert "6800.00" in money and "7450.00" in money  # the rail carrier's own charge and payout are among them
    async with served(await hub_settings()) as app:
        base = str(app.client.make_url("")).rstrip("/")
        shipper = (await signed_in(browser, base, SHIPPER, JOURNEY_ID)).page
        await shown(shipper)
        shipper_text = await shipper.locator("main").inner_text()
        assert "11945.34" in shipper_text  # the check below can see money on a page: the shipper's invoice total
        await shipper.context.close()
        consignee = (await signed_in(browser, base, CONSIGNEE, JOURNEY_ID)).page
        await shown(consignee)  # the policy gives a consignee the journey but not the shipper's invoice
        await expect(consignee.locator("#legs .leg-item")).to_have_count(4)
        await expect(consignee.locator("#billing")).to_have_count(0)
        assert "11945.34" not in await consignee.locator("main").inner_text()
        await consignee.context.close()

        tab = await signed_in(browser, base, RAIL, JOURNEY_ID)
        page = tab.page
        assert await shown(page) == RECORD.version
        await expect(page.locator("#legs .leg-item")).to_have_count(1)
        await expect(page.locator("#legs .leg-item h3")).to_have_text("Leg 2: CNCKG → CNQZH")
        await expect(page.locator("svg.route g.leg")).to_have_count(1)
        await expect(page.locator("#billing")).to_have_count(0)
        text, markup = await page.locator("main").inner_text(), await page.content()
        shown_money = {amount for amount in money if re.search(rf"(?<![\d.]){re.escape(amount)}(?![\d])", markup)}
        assert shown_money == set(), f"rates on the carrier's page: {sorted(shown_money)}"
        assert not re.search(r"\b(CNY|USD|MYR|SDR)\b", text)
        assert "carrier.sc-road" not in text  # nor another carrier's leg
        assert tab.errors == []
        await fits_the_phone(page)
        await readable(page)
        await page.screenshot(path=artifact("carrier-phone.png"), full_page=True)
        await page.context.close()


async def test_an_unknown_and_a_not_entitled_shipment_show_the_same_not_found(
    hub_settings: Callable[..., Awaitable[Settings]], browser: Browser
) -> None:
    async with served(await hub_settings()) as app:
        base = str(app.client.make_url("")).rstrip("/")
        seen: dict[str, tuple[str, str]] = {}
        for name, party, shipment_id in (("not entitled", BROKER, JOURNEY_ID), ("unknown", SHIPPER, UNKNOWN)):
            page = (await signed_in(browser, base, party, shipment_id)).page
            title = page.get_by_role("heading", level=1, name="Not found")
            await expect(title).to_be_visible(timeout=30_000)
            await expect(title).to_be_focused()
            await expect(page.locator("#shipment")).to_be_hidden()
            assert await page.locator("#shipment").inner_html() == ""
            seen[name] = (await page.locator("main").inner_text(), await page.title())
            await page.context.close()
        assert seen["not entitled"] == seen["unknown"]
        context = await browser.new_context(viewport=PHONE)  # a token the hub does not know: asked to sign in again
        page = await context.new_page()
        await page.goto(f"{base}/track/{JOURNEY_ID}")
        await page.get_by_label("Reader token").fill("mmh_demo_not-a-token")
        await page.get_by_role("button", name="Show the shipment").click()
        await expect(page.get_by_role("alert")).to_contain_text("did not accept this token")
        await expect(page.get_by_label("Reader token")).to_be_focused()
        assert await page.evaluate("() => sessionStorage.length") == 0
        await context.close()
        assert JOURNEY_ID not in seen["not entitled"][0]
        assert "There is no shipment with this id that you may read." in seen["unknown"][0]


async def test_the_shippers_page_shows_a_damage_its_claim_and_the_credit_note(
    hub_settings: Callable[..., Awaitable[Settings]], browser: Browser
) -> None:
    (record,) = offline(read_jsonl(CLAIM_JOURNEY)).values()
    (claim,) = record.claims
    (note,) = record.settlement.notes
    settings = await hub_settings()
    async with served(settings) as app:
        await project(settings, record)
        base = str(app.client.make_url("")).rstrip("/")
        tab = await signed_in(browser, base, SHIPPER, record.shipment_id)
        page = tab.page
        assert await shown(page) == record.version
        damages = page.locator("#exceptions .exceptions li")
        await expect(damages).to_have_count(sum(len(leg.exceptions) for leg in record.legs))
        await expect(damages.first).to_contain_text("damaged on leg 3 at SGSIN")
        await expect(page.locator("#exceptions .claims li")).to_contain_text(claim.claim_id)
        await expect(page.locator("#exceptions .claims li")).to_contain_text("acknowledged")
        await expect(page.locator("#billing")).to_contain_text(f"{note.amount.amount} {note.amount.currency}")
        await expect(page.locator("#legs .leg-item[data-leg='3']")).to_contain_text("exception(s) reported")
        await expect(page.locator("svg.route g.leg[data-leg='3'] .leg-label")).to_have_text("Leg 3 · Sea · 2 exception(s)")
        assert tab.errors == []
        await fits_the_phone(page)
        await page.screenshot(path=artifact("shipper-claim-phone.png"), full_page=True)
        await page.context.close()
