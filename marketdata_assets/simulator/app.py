"""The HTTP face of the simulator: one ASGI app, a path prefix per venue, a control API.

Every venue request goes through the same steps: count it; apply the venue's rate limit (breach
answer and stop); apply the request faults that fire (maintenance, HTTP error, HTML page, dropped
connection: answer and stop; slow: wait; truncate: cut the body); answer from the market with the
data faults applied. Venue paths are raw ASGI (so a fault can drop the TCP connection); the
``/__sim`` control API is a small Starlette app:

=========================  ===========================================================================
``GET /__sim/health``       ``{"ok": true}``
``GET /__sim/stats``        per venue: requests (by endpoint), responses by status, rows served, limit
                            breaches (by kind: 429/418/10006/403/50011/10028), active bans, faults injected
``POST /__sim/stats/reset`` zero the counters
``GET /__sim/venues``       per venue ``base_url``, ``real_base_url`` and ``ccxt_api_urls``
``GET /__sim/faults``       the active faults
``POST /__sim/faults``      add: ``{"spec": "okx:duplicates"}``, ``{"specs": [...]}``, a fault object or a list
``DELETE /__sim/faults``    remove every fault; ``DELETE /__sim/faults/{id}`` one
``POST /__sim/limits/reset`` forget rate-limit windows and bans
=========================  ===========================================================================
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from marketdata_assets.venues.endpoints import REAL_BASE_URLS, ccxt_api_urls

from .core import Simulator
from .faults import Fault
from .venues import venue_apis
from .wire import Reply, VenueApi, first_values, html_error_page

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger(__name__)


def _close_connection(receive: Receive) -> bool:
    """Close the client's TCP connection under uvicorn (its ASGI ``receive`` is bound to the cycle)."""
    cycle = getattr(receive, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        return False
    cycle.disconnected = True  # type: ignore[union-attr]  # uvicorn then sends nothing more
    transport.close()
    return True


async def _send(send: Send, reply: Reply, head_only: bool = False) -> None:
    headers = [
        (b"content-type", reply.content_type.encode()),
        (b"content-length", str(len(reply.body)).encode()),
    ]
    headers += [(k.lower().encode(), v.encode()) for k, v in reply.headers.items()]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head_only else reply.body})


class SimulatorApp:
    """ASGI application serving every venue under ``/{venue}/...`` and the ``/__sim`` control API."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.apis: dict[str, VenueApi] = venue_apis()
        self.control = build_control_app(sim)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            venue, _, rest = scope["path"].lstrip("/").partition("/")
            if venue in self.apis:
                await self.serve_venue(self.apis[venue], "/" + rest, scope, receive, send)
                return
        await self.control(scope, receive, send)

    async def serve_venue(self, api: VenueApi, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        sim = self.sim
        venue = api.name
        head_only = scope["method"] == "HEAD"
        query = first_values(
            parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        )
        client = scope.get("client")
        ip = client[0] if client else "unknown"
        endpoint = api.endpoint(path) if scope["method"] in ("GET", "HEAD") else None
        if endpoint is None:
            sim.stats.request(venue, "(unknown)")
            reply = api.not_found(path, sim)
            sim.stats.status(venue, reply.status)
            await _send(send, reply, head_only)
            return
        sim.stats.request(venue, endpoint)
        decision = sim.limiter.check(venue, endpoint, ip)
        if not decision.allowed:
            assert decision.breach is not None
            sim.stats.breach(venue, decision.breach)
            reply = api.limit_reply(decision, ip, sim)
            sim.stats.status(venue, reply.status)
            await _send(send, reply, head_only)
            return

        truncate: Fault | None = None
        symbol = api.instrument(endpoint, query, sim)
        for fault in sim.faults.request_faults(venue, endpoint, symbol, sim.now_ms()):
            sim.stats.fault(venue, fault.kind)
            if fault.kind == "slow":
                await asyncio.sleep(fault.delay_s)
                continue
            if fault.kind == "truncate":
                truncate = fault
                continue
            if fault.kind == "drop" and _close_connection(receive):
                return
            if fault.kind == "maintenance":
                reply = api.maintenance_reply(sim)
            elif fault.kind == "html":
                reply = html_error_page(fault.status or 502)
            else:  # http_error, or drop outside uvicorn
                reply = api.error_reply(fault.status or 500, sim)
                if fault.retry_after is not None:
                    reply.headers["Retry-After"] = fault.retry_after
            sim.stats.status(venue, reply.status)
            await _send(send, reply, head_only)
            return

        try:
            reply = api.decorate(api.handle(endpoint, query, sim), decision)
        except Exception:  # a bug must still answer like a server would
            log.exception("simulator failed on %s %s", venue, path)
            reply = api.error_reply(500, sim)
        sim.stats.status(venue, reply.status)
        if truncate is not None:
            keep = int(len(reply.body) * truncate.keep)
            headers = [
                (b"content-type", reply.content_type.encode()),
                (b"content-length", str(len(reply.body)).encode()),
            ]
            await send({"type": "http.response.start", "status": reply.status, "headers": headers})
            await send({"type": "http.response.body", "body": reply.body[:keep], "more_body": True})
            if not _close_connection(receive):
                raise ConnectionAbortedError("truncated response")
            return
        await _send(send, reply, head_only)


def venues_document(server_url: str) -> dict[str, Any]:
    """What ``GET /__sim/venues`` answers for a server at ``server_url``."""
    out: dict[str, Any] = {}
    for venue, real in REAL_BASE_URLS.items():
        base = f"{server_url.rstrip('/')}/{venue}"
        entry: dict[str, Any] = {
            "base_url": base,
            "real_base_url": real,
            "ccxt_api_urls": ccxt_api_urls(venue, base),
        }
        if venue == "deribit":
            entry["httpx_base_url"] = base
            entry["dvol_path"] = "/api/v2/public/get_volatility_index_data"
        out[venue] = entry
    return out


def build_control_app(sim: Simulator) -> Starlette:
    def server_url(request: Request) -> str:
        return f"{request.url.scheme}://{request.url.netloc}"

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    async def index(request: Request) -> JSONResponse:
        return JSONResponse(
            {"simulator": "marketdata_assets", "venues": venues_document(server_url(request))}
        )

    async def stats(request: Request) -> JSONResponse:
        return JSONResponse(sim.stats_snapshot())

    async def stats_reset(request: Request) -> JSONResponse:
        sim.stats.reset()
        return JSONResponse({"ok": True})

    async def venues(request: Request) -> JSONResponse:
        return JSONResponse(venues_document(server_url(request)))

    async def faults(request: Request) -> JSONResponse:
        if request.method == "GET":
            return JSONResponse({"faults": [f.as_dict() for f in sim.faults.list()]})
        if request.method == "DELETE":
            sim.faults.clear()
            return JSONResponse({"ok": True, "faults": []})
        try:
            payload = await request.json()
        except ValueError:
            return JSONResponse({"error": "body must be JSON"}, status_code=400)
        if isinstance(payload, dict) and "specs" in payload:
            payload = payload["specs"]
        items = payload if isinstance(payload, list) else [payload]
        try:
            added = [sim.faults.add(item) for item in items]
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"ok": True, "faults": [f.as_dict() for f in added]})

    async def fault_delete(request: Request) -> JSONResponse:
        removed = sim.faults.remove(int(request.path_params["fault_id"]))
        return JSONResponse({"ok": removed}, status_code=200 if removed else 404)

    async def limits_reset(request: Request) -> JSONResponse:
        sim.limiter.reset()
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/", index),
            Route("/__sim/health", health),
            Route("/__sim/stats", stats),
            Route("/__sim/stats/reset", stats_reset, methods=["POST"]),
            Route("/__sim/venues", venues),
            Route("/__sim/faults", faults, methods=["GET", "POST", "DELETE"]),
            Route("/__sim/faults/{fault_id:int}", fault_delete, methods=["DELETE"]),
            Route("/__sim/limits/reset", limits_reset, methods=["POST"]),
        ]
    )
