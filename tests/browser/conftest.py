"""The tracking page in a real browser (tests/browser/chromium.py), against the real gateway over the real broker and
Postgres: the integration tests' own fixtures give each test a private namespace and schema."""

from tests.browser.chromium import browser  # noqa: F401
from tests.integration.conftest import hub, hub_settings, services  # noqa: F401
from tests.integration.test_reader import running  # noqa: F401 (worker, sink and `mmhub gateway` on a private namespace)
