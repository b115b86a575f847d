"""Attacker's tests: one per finding of the security review, on the real services where the finding involves them.

The real-service fixtures are the integration tests' own (a private namespace and Postgres schema per test).
"""

from tests.integration.conftest import hub, hub_settings, services  # noqa: F401
from tests.browser.chromium import browser  # noqa: F401 (headless Chromium, for the tracking page's tests)
