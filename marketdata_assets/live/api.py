"""The live service's HTTP API (Starlette): buffers, history, availability, health, metrics, SSE.

Every name in a path or query is checked before use -- exchange, symbol and timeframe by the same
patterns as :class:`~marketdata_assets.client.MarketDataClient`, then against the configured series --
and a bad one answers 4xx with ``{"error": ...}`` naming it. Symbols may be ``BTCUSDT`` or ``BTC-USDT``.
Tables answer JSON by default, Arrow IPC (stream format) or CSV by ``Accept`` or ``?format=``.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pandas as pd
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.schemas import SchemaGenerator
from starlette.staticfiles import StaticFiles

from marketdata_assets.live.buffers import LIVE_TIMEFRAMES, Candle, bin_ms, candles_frame
from marketdata_assets.live.events import CandleEvent, series_name
from marketdata_assets.live.service import LiveService

API = "/api/v1"
STATIC_PACKAGE = ("marketdata_assets.live", "static")
"""The chart page and its JavaScript (ours + the vendored Lightweight Charts), package data."""
FORMATS = {"json": "application/json", "csv": "text/csv", "arrow": "application/vnd.apache.arrow.stream"}
KEEPALIVE_S = 15.0
MAX_SERIES_PER_STREAM = 64
MAX_REPLAY_DAYS = 31
MAX_REPLAY_CANDLES = 200_000
"""Bins a replay may span, summed over its series (4 series of 1m for a month): it is loaded at once."""
MAX_REPLAY_SPEED = 1e6

_EXCHANGE_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_SYMBOL_RE = re.compile(r"^[A-Za-z0-9]{2,15}(-[A-Za-z0-9]{2,10})?$")


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def build_app(service: LiveService) -> Starlette:
    """The ASGI app over one :class:`LiveService` (which the caller starts and polls). Each handler
    below reads the service from ``request.app.state.service``; :func:`_guarded` answers an
    :class:`ApiError` with its JSON error and counts every request by route and status."""
    base = f"{API}/market-data/{{exchange}}/{{symbol}}"
    routes = [
        Route("/", _guarded("index", index), methods=["GET"], include_in_schema=False),
        Mount("/static", StaticFiles(packages=[STATIC_PACKAGE]), name="static"),
        Route(f"{base}/buffer/{{timeframe}}", _guarded("buffer", buffer), methods=["GET"]),
        Route(f"{base}/history", _guarded("history", history), methods=["GET"]),
        Route(f"{API}/market-data/available", _guarded("available", available), methods=["GET"]),
        Route(f"{API}/stream", _guarded("stream", stream), methods=["GET"]),
        Route(f"{API}/replay", _guarded("replay", replay), methods=["GET"]),
        Route("/health", _guarded("health", health), methods=["GET"]),
        Route("/metrics", _guarded("metrics", metrics), methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"], include_in_schema=False),
    ]
    app = Starlette(routes=routes, exception_handlers={404: _not_found, 405: _not_allowed})
    app.state.service = service
    return app


def _service(request: Request) -> LiveService:
    return request.app.state.service


def _guarded(route: str, handler: Callable[[Request], Awaitable[Response]]) -> Callable:
    async def endpoint(request: Request) -> Response:
        try:
            response = await handler(request)
        except ApiError as exc:
            response = JSONResponse({"error": exc.message}, status_code=exc.status)
        service = _service(request)
        key = (route, response.status_code)
        with service.lock:
            service.metrics.requests[key] = service.metrics.requests.get(key, 0) + 1
        return response

    endpoint.__doc__ = handler.__doc__
    return endpoint


# -- the endpoints ----------------------------------------------------------------------------------


async def buffer(request: Request) -> Response:
    """
    summary: The rolling buffer of one series, with its freshness
    parameters:
      - {name: exchange, in: path, required: true, schema: {type: string}}
      - {name: symbol, in: path, required: true, schema: {type: string}, description: BTCUSDT or BTC-USDT}
      - {name: timeframe, in: path, required: true, schema: {type: string, enum: [1m, 5m, 15m, 1h, 4h, 1d]}}
      - {name: format, in: query, schema: {type: string, enum: [json, csv, arrow]}}
    responses:
      200: {description: "candles (open time UTC, OHLCV, n_minutes, expected_minutes, complete) + freshness + gaps"}
      400: {description: a malformed name}
      404: {description: a series the service does not serve}
    """
    service = _service(request)
    exchange, key = _series(service, request)
    timeframe = _timeframe(request.path_params["timeframe"])
    fmt = _format(request)
    with service.lock:
        buf = service.buffers[(exchange, key)]
        candles = list(buf.candles[timeframe])
        gaps = [g.as_json() for g in buf.gaps]
        through = buf.through_ms
    freshness = _freshness(service, exchange, key, timeframe, candles, through)
    if fmt != "json":
        return _table(candles_frame(candles), fmt, {"X-Last-Closed": str(freshness["last_closed"])})
    return JSONResponse(
        {
            "exchange": exchange,
            "symbol": key,
            "timeframe": timeframe,
            "freshness": freshness,
            "gaps": gaps,
            "candles": _records(candles_frame(candles)),
        }
    )


async def history(request: Request) -> Response:
    """
    summary: Served history joined with the buffer for the minutes not served yet
    parameters:
      - {name: exchange, in: path, required: true, schema: {type: string}}
      - {name: symbol, in: path, required: true, schema: {type: string}}
      - {name: timeframe, in: query, required: true, schema: {type: string}}
      - {name: start, in: query, required: true, schema: {type: string, format: date-time}, description: inclusive, UTC}
      - {name: end, in: query, required: true, schema: {type: string, format: date-time}, description: exclusive, UTC}
      - {name: format, in: query, schema: {type: string, enum: [json, csv, arrow]}}
    responses:
      200: {description: candles with the client's columns (complete, n_minutes)}
      400: {description: a malformed name or range}
      404: {description: a series the service does not serve}
    """
    service = _service(request)
    exchange, key = _series(service, request)
    params = request.query_params
    timeframe = _timeframe(params.get("timeframe", "1h"))
    start, end = _range(params.get("start"), params.get("end"))
    fmt = _format(request)
    frame = await asyncio.to_thread(_history, service, exchange, key, timeframe, start, end)
    # A month of 1m is 44,640 rows (~9 MB of JSON, ~0.5 s to render): rendered off the event loop, so
    # one large answer never holds up the buffers, the SSE streams and every other request.
    if fmt != "json":
        return await asyncio.to_thread(_table, frame, fmt)
    envelope = {"exchange": exchange, "symbol": key, "timeframe": timeframe}
    body = await asyncio.to_thread(_json_body, envelope, frame)
    return Response(body, media_type=FORMATS["json"])


async def available(request: Request) -> Response:
    """
    summary: Every series the service serves, live and stored
    responses:
      200: {description: "live: buffered series (first, last, candles); served: MarketDataClient.available()"}
    """
    service = _service(request)
    live = []
    with service.lock:
        for (exchange, key), buf in service.buffers.items():
            for timeframe in LIVE_TIMEFRAMES:
                candles = buf.candles[timeframe]
                live.append(
                    {
                        "exchange": exchange,
                        "symbol": key,
                        "timeframe": timeframe,
                        "first": _iso(candles[0].timestamp) if candles else None,
                        "last": _iso(candles[-1].timestamp) if candles else None,
                        "candles": len(candles),
                    }
                )
    served = await asyncio.to_thread(_served_inventory, service)
    return JSONResponse({"live": live, "served": served})


async def health(request: Request) -> Response:
    """
    summary: Per venue status, last success and lag; 503 when a venue is failing
    responses:
      200: {description: every venue answers}
      503: {description: a venue (or Redis) is failing; the body says which and why}
    """
    service = _service(request)
    now = service.now_ms()
    with service.lock:
        venues = {v: h.as_json(now) for v, h in service.health.items()}
        lags = {series_name(e, k, "1m"): service.lag_seconds(e, k) for (e, k) in service.buffers}
    ok = all(v["status"] == "ok" for v in venues.values()) and service.redis_error is None
    body = {
        "status": "ok" if ok else "degraded",
        "venues": venues,
        "lag_seconds": lags,
        "redis": None if service.redis is None else {"error": service.redis_error},
    }
    return JSONResponse(body, status_code=200 if ok else 503)


async def metrics(request: Request) -> Response:
    """
    summary: Prometheus text metrics
    responses:
      200: {description: "requests, fetch latency, lag, events published"}
    """
    service = _service(request)
    return PlainTextResponse(_prometheus(service), media_type="text/plain; version=0.0.4")


async def stream(request: Request) -> Response:
    """
    summary: New closed candles as Server-Sent Events
    description: >
      series is a comma list of exchange:SYMBOL:timeframe. Each event's id is the sequence number of
      its series (one series) or the dot-joined sequence numbers of every series in the order given
      (several); send it back as Last-Event-ID to receive what was missed, from the buffer.
    parameters:
      - {name: series, in: query, required: true, schema: {type: string}, example: "binance:BTCUSDT:1m"}
    responses:
      200: {description: text/event-stream}
      400: {description: a malformed series or Last-Event-ID}
      404: {description: a series the service does not serve}
    """
    service = _service(request)
    wanted = _stream_series(service, request.query_params.get("series"))
    last = _last_event_id(request.headers.get("last-event-id"), len(wanted))
    queue = service.bus.subscribe()  # before the backlog is read, so nothing falls in between
    return _event_stream(_live_events(service, wanted, last, queue))


async def _live_events(
    service: LiveService,
    wanted: list[tuple[str, str, str]],
    last: list[int | None],
    queue: asyncio.Queue[list[CandleEvent]],
) -> AsyncIterator[bytes]:
    """The backlog after ``last`` from the buffers, then each new event of ``wanted`` from ``queue``."""
    seqs = list(last)
    try:
        backlog: list[tuple[int, CandleEvent]] = []
        for j, (exchange, key, timeframe) in enumerate(wanted):
            if seqs[j] is not None:
                for candle in service.candles_since(exchange, key, timeframe, seqs[j]):
                    backlog.append((j, CandleEvent(exchange, key, candle)))
            else:  # a new consumer starts at the newest buffered candle
                newest = service.buffers[(exchange, key)].last_closed(timeframe)
                seqs[j] = newest.seq if newest else -1
        backlog.sort(key=lambda pair: (pair[1].candle.close_time, bin_ms(pair[1].timeframe)))
        for j, event in backlog:
            if event.seq > seqs[j]:
                seqs[j] = event.seq
                yield _sse(event, seqs)
        yield b": connected\n\n"
        index = {series: j for j, series in enumerate(series_name(*w) for w in wanted)}
        while True:
            try:
                batch = await asyncio.wait_for(queue.get(), timeout=KEEPALIVE_S)
            except TimeoutError:
                yield b": keep-alive\n\n"
                continue
            for event in batch:
                j = index.get(event.series)
                if j is not None and event.seq > seqs[j]:
                    seqs[j] = event.seq
                    yield _sse(event, seqs)
    finally:
        service.bus.unsubscribe(queue)


async def replay(request: Request) -> Response:
    """
    summary: Served history as the stream's events (Server-Sent Events), for backtests
    description: >
      The candles MarketDataClient serves for [start, end) of each series, as the same messages
      /api/v1/stream sends live (id, event candle, data), in the live order (close time, then
      timeframe), one batch per close time, speed x real time between close times (0: at once).
      Before its first event a series' sequence number is the bin before start. Ends with an end event
      ({"events": n}); Last-Event-ID resumes after it.
    parameters:
      - {name: series, in: query, required: true, schema: {type: string}, example: "binance:BTCUSDT:1m"}
      - {name: start, in: query, required: true, schema: {type: string, format: date-time}, description: inclusive, UTC}
      - {name: end, in: query, required: true, schema: {type: string, format: date-time}, description: "exclusive, UTC; at most 31 days after start and 200,000 bins over all series"}
      - {name: speed, in: query, schema: {type: number, default: 0}, description: x real time; 0 = as fast as possible}
    responses:
      200: {description: text/event-stream}
      400: {description: a malformed series, range, speed or Last-Event-ID}
      404: {description: a series with nothing served in the range}
    """
    service = _service(request)
    params = request.query_params
    wanted = _parse_series(params.get("series"))
    start, end = _range(params.get("start"), params.get("end"))
    if end - start > pd.Timedelta(days=MAX_REPLAY_DAYS):
        raise ApiError(400, f"a replay spans at most {MAX_REPLAY_DAYS} days; ask for the rest next")
    bins = sum((end - start) // pd.Timedelta(milliseconds=bin_ms(tf)) for _, _, tf in wanted)
    if bins > MAX_REPLAY_CANDLES:
        raise ApiError(
            400,
            f"a replay spans at most {MAX_REPLAY_CANDLES:,} bins (this one {bins:,}): fewer series or days",
        )
    speed = _speed(params.get("speed"))
    last = _last_event_id(request.headers.get("last-event-id"), len(wanted))
    events = await asyncio.to_thread(_replay_events, service, wanted, start, end)
    start_ms = int(start.value // 1_000_000)
    seqs = [
        s if s is not None else -(-start_ms // bin_ms(tf)) - 1
        for s, (_, _, tf) in zip(last, wanted, strict=True)
    ]
    return _event_stream(_replayed(wanted, events, seqs, speed))


def _replay_events(
    service: LiveService, wanted: list[tuple[str, str, str]], start: pd.Timestamp, end: pd.Timestamp
) -> list[CandleEvent]:
    from marketdata_assets.client import MarketDataClient, MarketDataError
    from marketdata_assets.live.replay import live_order, series_events

    if service.root is None:
        raise ApiError(404, "this service has no served history to replay")
    client = MarketDataClient(root=service.root)
    events: list[CandleEvent] = []
    for item in wanted:  # one by one, so the error names the series (never the storage root)
        try:
            events += series_events(client, [item], start, end)
        except MarketDataError:
            raise ApiError(
                404, f"nothing served for {series_name(*item)} in [{start.isoformat()}, {end.isoformat()})"
            ) from None
    return live_order(events)


async def _replayed(
    wanted: list[tuple[str, str, str]], events: list[CandleEvent], seqs: list[int | None], speed: float
) -> AsyncIterator[bytes]:
    from marketdata_assets.live.replay import batches, pause_s

    index = {series_name(*w): j for j, w in enumerate(wanted)}
    sent = 0
    previous: int | None = None
    yield f": replay of {len(events)} candle events\n\n".encode()
    for close_time, batch in batches(events):
        wait = pause_s(previous, close_time, speed)
        if wait > 0:
            await asyncio.sleep(wait)
        previous = close_time
        for event in batch:
            j = index[event.series]
            if event.seq > seqs[j]:  # Last-Event-ID: what the consumer has is skipped
                seqs[j] = event.seq
                sent += 1
                yield _sse(event, seqs)
    yield f"event: end\ndata: {json.dumps({'events': sent})}\n\n".encode()


def _event_stream(events: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


_SCHEMAS = SchemaGenerator({"openapi": "3.0.0", "info": {"title": "marketdata live", "version": "1"}})


async def openapi(request: Request) -> Response:
    return JSONResponse(_SCHEMAS.get_schema(routes=request.app.routes))


async def index(request: Request) -> Response:
    return HTMLResponse(_static_text("index.html"), headers={"Cache-Control": "no-cache"})


def _static_text(name: str) -> str:
    from importlib.resources import files

    return files(STATIC_PACKAGE[0]).joinpath(STATIC_PACKAGE[1], name).read_text(encoding="utf-8")


# -- checking what callers send -------------------------------------------------------------------


def _series(service: LiveService, request: Request) -> tuple[str, str]:
    exchange = request.path_params["exchange"]
    symbol = request.path_params["symbol"]
    if not _EXCHANGE_RE.fullmatch(exchange):
        raise ApiError(400, f"invalid exchange {exchange!r} (expected to match {_EXCHANGE_RE.pattern})")
    if not _SYMBOL_RE.fullmatch(symbol):
        raise ApiError(400, f"invalid symbol {symbol!r}: expected BTCUSDT or BTC-USDT")
    key = symbol.replace("-", "").upper()
    if (exchange, key) not in service.buffers:
        served = ", ".join(f"{e}:{k}" for e, k in service.buffers)
        raise ApiError(404, f"unknown series {exchange}:{key}; served live: {served}")
    return exchange, key


def _timeframe(timeframe: str | None) -> str:
    if timeframe not in LIVE_TIMEFRAMES:
        raise ApiError(400, f"invalid timeframe {timeframe!r}; expected one of {', '.join(LIVE_TIMEFRAMES)}")
    return timeframe


def _format(request: Request) -> str:
    asked = request.query_params.get("format")
    if asked is not None:
        if asked not in FORMATS:
            raise ApiError(400, f"invalid format {asked!r}; expected one of {', '.join(FORMATS)}")
        return asked
    accept = request.headers.get("accept", "")
    for fmt, media in FORMATS.items():
        if media in accept and fmt != "json":
            return fmt
    return "json"


def _range(start: str | None, end: str | None) -> tuple[pd.Timestamp, pd.Timestamp]:
    from marketdata_assets.client import MarketDataError, _checked_range

    for name, value in (("start", start), ("end", end)):
        if value is None:
            raise ApiError(400, f"query parameter {name} is required (ISO date or datetime, UTC)")
        if len(value) > 40:
            raise ApiError(400, f"query parameter {name} is too long")
    try:
        return _checked_range(start, end)
    except MarketDataError as exc:
        raise ApiError(400, str(exc)) from None


def _stream_series(service: LiveService, text: str | None) -> list[tuple[str, str, str]]:
    wanted = _parse_series(text)
    for exchange, key, _ in wanted:
        if (exchange, key) not in service.buffers:
            raise ApiError(404, f"unknown series {exchange}:{key}")
    return wanted


def _parse_series(text: str | None) -> list[tuple[str, str, str]]:
    """``exchange:SYMBOL:timeframe[,...]`` -> ``[(exchange, SYMBOLKEY, timeframe), ...]``, each checked."""
    if not text:
        raise ApiError(400, "query parameter series is required: exchange:SYMBOL:timeframe[,...]")
    parts = text.split(",")
    if len(parts) > MAX_SERIES_PER_STREAM:
        raise ApiError(400, f"at most {MAX_SERIES_PER_STREAM} series per stream")
    out: list[tuple[str, str, str]] = []
    for part in parts:
        fields = part.strip().split(":")
        if len(fields) != 3:
            raise ApiError(400, f"invalid series {part[:80]!r}: expected exchange:SYMBOL:timeframe")
        exchange, symbol, timeframe = fields
        if not _EXCHANGE_RE.fullmatch(exchange) or not _SYMBOL_RE.fullmatch(symbol):
            raise ApiError(400, f"invalid series {part[:80]!r}: bad exchange or symbol")
        item = (exchange, symbol.replace("-", "").upper(), _timeframe(timeframe))
        if item in out:
            raise ApiError(400, f"series {series_name(*item)} listed twice")
        out.append(item)
    return out


def _speed(text: str | None) -> float:
    if text is None:
        return 0.0
    try:
        speed = float(text[:20])
    except ValueError:
        raise ApiError(
            400, f"invalid speed {text[:40]!r}: expected a number (0: as fast as possible)"
        ) from None
    if not 0 <= speed <= MAX_REPLAY_SPEED:  # also refuses nan
        raise ApiError(400, f"invalid speed {text[:40]!r}: expected 0 to {MAX_REPLAY_SPEED:g}")
    return speed


def _last_event_id(text: str | None, n: int) -> list[int | None]:
    if not text:
        return [None] * n
    parts = text.strip().split(".")
    if len(parts) != n or not all(re.fullmatch(r"-?[0-9]{1,15}", p) for p in parts):
        raise ApiError(
            400, f"invalid Last-Event-ID {text[:80]!r}: expected {n} dot-separated sequence numbers"
        )
    return [int(p) for p in parts]


# -- rendering ------------------------------------------------------------------------------------


def _sse(event: CandleEvent, seqs: list[int | None]) -> bytes:
    event_id = ".".join(str(s) for s in seqs)
    data = json.dumps(event.as_json(), separators=(",", ":"))
    return f"id: {event_id}\nevent: candle\ndata: {data}\n\n".encode()


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts, timestamps as ISO text (``2024-03-01T00:00:00+00:00``): column-wise, not per cell."""
    names = list(frame.columns)
    columns = [_iso_column(frame[name]) if name == "timestamp" else frame[name].tolist() for name in names]
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def _iso_column(timestamps: pd.Series) -> list[str]:
    """UTC timestamps as ``datetime.isoformat()`` text, vectorised (the API's candles are whole minutes)."""
    text = timestamps.dt.strftime("%Y-%m-%dT%H:%M:%S").tolist()
    whole_seconds_utc = str(timestamps.dt.tz) == "UTC" and not timestamps.dt.microsecond.to_numpy().any()
    if not whole_seconds_utc:  # isoformat per cell, exactly the same text
        return [t.isoformat() for t in timestamps]
    return [f"{t}+00:00" for t in text]


def _json_body(envelope: dict[str, Any], frame: pd.DataFrame) -> bytes:
    """``envelope`` plus ``candles`` as Starlette's JSONResponse renders it (no NaN, compact, UTF-8)."""
    content = {**envelope, "candles": _records(frame)}
    return json.dumps(
        content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode()


def _table(frame: pd.DataFrame, fmt: str, headers: dict[str, str] | None = None) -> Response:
    if fmt == "csv":
        out = frame.copy()
        out["timestamp"] = out["timestamp"].map(lambda t: t.isoformat())
        return Response(out.to_csv(index=False), media_type=FORMATS["csv"], headers=headers)
    import pyarrow as pa

    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return Response(sink.getvalue(), media_type=FORMATS["arrow"], headers=headers)


def _freshness(
    service: LiveService, exchange: str, key: str, timeframe: str, candles: list[Candle], through: int | None
) -> dict[str, Any]:
    now = service.now_ms()
    last = candles[-1] if candles else None
    health = service.health[exchange]
    return {
        "now": _iso(now),
        "last_closed": _iso(last.timestamp) if last else None,
        "last_closed_age_seconds": round((now - last.close_time) / 1000, 3) if last else None,
        "settled_through": _iso(through) if through is not None else None,
        "venue_status": health.status,
        "venue_last_error": health.last_error,
        "buffer_length": service.buffer_length,
        "candles": len(candles),
    }


def _history(
    service: LiveService, exchange: str, key: str, timeframe: str, start: pd.Timestamp, end: pd.Timestamp
) -> pd.DataFrame:
    from marketdata_assets.client import MarketDataClient, MarketDataError

    served = None
    if service.root is not None:
        try:
            served = MarketDataClient(root=service.root).get_historical_data(
                key, exchange, timeframe, start, end
            )
            served = served.reset_index()
        except MarketDataError:
            served = None
    with service.lock:
        live = candles_frame(service.buffers[(exchange, key)].candles[timeframe])
    live = live[(live["timestamp"] >= start) & (live["timestamp"] < end)]
    if served is not None and len(served):
        live = live[live["timestamp"] > served["timestamp"].max()]
        frame = (
            pd.concat([served[live.columns], live], ignore_index=True) if len(live) else served[live.columns]
        )
    else:
        frame = live
    return frame.reset_index(drop=True)


def _served_inventory(service: LiveService) -> list[dict[str, Any]]:
    if service.root is None:
        return []
    from marketdata_assets.client import MarketDataClient

    try:
        inventory = MarketDataClient(root=service.root).available()
    except Exception:  # noqa: BLE001 - nothing stored yet
        return []
    return json.loads(inventory.to_json(orient="records", date_format="iso"))


def _prometheus(service: LiveService) -> str:
    lines = [
        "# HELP marketdata_live_requests_total HTTP requests by route and status.",
        "# TYPE marketdata_live_requests_total counter",
    ]
    with service.lock:
        for (route, status), count in sorted(service.metrics.requests.items()):
            lines.append(f'marketdata_live_requests_total{{route="{route}",status="{status}"}} {count}')
        lines += [
            "# HELP marketdata_live_fetch_seconds Time spent fetching candles from each venue.",
            "# TYPE marketdata_live_fetch_seconds summary",
        ]
        for venue, h in service.health.items():
            lines.append(f'marketdata_live_fetch_seconds_sum{{venue="{venue}"}} {h.fetch_seconds:.6f}')
            lines.append(f'marketdata_live_fetch_seconds_count{{venue="{venue}"}} {h.fetches}')
        lines += [
            "# HELP marketdata_live_venue_up 1 when the venue's last fetch succeeded.",
            "# TYPE marketdata_live_venue_up gauge",
        ]
        lines += [
            f'marketdata_live_venue_up{{venue="{v}"}} {int(h.status == "ok")}'
            for v, h in service.health.items()
        ]
        lines += [
            "# HELP marketdata_live_lag_seconds Now minus the close of the newest settled minute.",
            "# TYPE marketdata_live_lag_seconds gauge",
        ]
        for exchange, key in service.buffers:
            lag = service.lag_seconds(exchange, key)
            if lag is not None:
                lines.append(f'marketdata_live_lag_seconds{{exchange="{exchange}",symbol="{key}"}} {lag}')
        lines += [
            "# HELP marketdata_live_events_published_total Candle events published, by backend.",
            "# TYPE marketdata_live_events_published_total counter",
            f'marketdata_live_events_published_total{{backend="memory"}} {service.metrics.events_published}',
        ]
        if service.redis is not None:
            lines.append(
                f'marketdata_live_events_published_total{{backend="redis"}} {service.redis.published}'
            )
    return "\n".join(lines) + "\n"


async def _not_found(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": f"no such endpoint: {request.url.path[:200]}"}, status_code=404)


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": f"method {request.method} not allowed here"}, status_code=405)


def _iso(ms: int | None) -> str | None:
    return None if ms is None else pd.Timestamp(ms, unit="ms", tz="UTC").isoformat()
