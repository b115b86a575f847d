"""The tracking page: a shipper's, consignee's or carrier's own view of a shipment in a browser, live.

`GET /track` and `GET /track/{shipment_id}` answer one static page, the same bytes whatever the id, and without
asking who is there: the page holds no shipment data. Its script (`/track/assets/track.js`) asks the party for its
reader token in a form, keeps it in the tab's sessionStorage, and reads the party's view from the reader API's live
feed (`/v1/shipments/{id}/live`, connectors.gateway.reader) with the token in the `Authorization` header, never in a
URL. So the page shows exactly the view the API gives that party (a shipment it may not read is the API's one 404,
shown as the same "not found"), and every view it shows is audited as the API's are.

Every answer here carries a Content-Security-Policy that lets the page load only its own script and style from the
gateway and connect only to the gateway: no inline script, no other origin, no form that posts anywhere, no framing.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from aiohttp import web

ASSETS = "tracking_assets"

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
))

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str


def _asset(name: str, content_type: str) -> Asset:
    return Asset(resources.files("connectors.gateway").joinpath(ASSETS, name).read_bytes(), content_type)


class TrackingPage:
    """The page and its three assets, read once from the package; nothing else under /track is served."""

    def __init__(self) -> None:
        self.page = _asset("track.html", "text/html")
        self.assets = {
            "track.js": _asset("track.js", "text/javascript"),
            "track.css": _asset("track.css", "text/css"),
            "icon.svg": _asset("icon.svg", "image/svg+xml"),
        }

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/track", self.get_page)
        app.router.add_get("/track/{shipment_id}", self.get_page)
        app.router.add_get("/track/assets/{name}", self.get_asset)

    async def get_page(self, request: web.Request) -> web.Response:
        return _answer(self.page)

    async def get_asset(self, request: web.Request) -> web.Response:
        asset = self.assets.get(request.match_info["name"])
        if asset is None:
            return web.Response(status=404, text="not found", headers=SECURITY_HEADERS)
        return _answer(asset)


def _answer(asset: Asset) -> web.Response:
    return web.Response(body=asset.body, content_type=asset.content_type, charset="utf-8", headers=SECURITY_HEADERS)
