"""A real browser for the page tests: Debian's Chromium (`apt-get install chromium`, which `make test` does through
`infra/dev.sh browser`), headless, driven by Playwright for Python pointed at that binary. Playwright's own browser
downloads are never used.

Without /usr/bin/chromium the browser tests are skipped, and say so loudly (on stderr and in pytest's summary);
with MMHUB_REQUIRE_BROWSER=1 (set by `make test`) they fail instead.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import AsyncIterator

import pytest
from playwright.async_api import Browser, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """Headless Chromium; every launch gets a fresh temporary profile (Playwright's own user-data-dir)."""
    if not CHROMIUM.exists():
        message = f"CHROMIUM IS NOT INSTALLED ({CHROMIUM} is missing): THE BROWSER TESTS DID NOT RUN. `bash infra/dev.sh browser` installs it."
        if os.environ.get("MMHUB_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        print(f"\n*** {message} ***", file=sys.stderr)
        pytest.skip(message)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield launched
        finally:
            await launched.close()


def artifact(name: str) -> Path:
    """Where a screenshot goes (test-artifacts/ is ignored by git); the path is printed."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    print(f"screenshot: {path}")
    return path
