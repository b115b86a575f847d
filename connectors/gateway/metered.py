"""Every gateway request counted by route and status and timed (runtime.metrics), the outermost middleware, so
refusals by the guards (429, 400) are counted too."""

from __future__ import annotations

import time
from typing import Awaitable, Callable

from aiohttp import web

from runtime.metrics import HTTP_REQUESTS, HTTP_SECONDS

UNMATCHED = "unmatched"  # no route: one label for every unknown path, so a scanner cannot mint label values


def route_of(request: web.Request) -> str:
    """The route's pattern (`/v1/events/{format}`), never the path itself."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED


@web.middleware
async def metered(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    started = time.monotonic()
    status = 500  # what aiohttp answers for an exception that is no HTTP answer
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as answer:
        status = answer.status
        raise
    finally:
        route = route_of(request)
        HTTP_REQUESTS.labels(route, str(status)).inc()
        HTTP_SECONDS.labels(route).observe(time.monotonic() - started)
