"""Binance / Bybit / OKX spot 1-minute candles through ccxt, one UTC day at a time.

Pagination is ours, not ccxt's (``paginate=True`` silently stops after 10 pages, ccxt #26252).
Each request asks for one *window* ``[cursor, min(cursor + page * 1m, day_end))`` -- exactly one
page wide -- so a venue that fills a page from the newest end (Bybit, OKX) and one that fills it
from the oldest end (Binance) return the same rows, and no page ever runs past the day:

=======  ==========================  ======  =====================================================
venue    endpoint                    page    window params (besides ``since=cursor, limit=page``)
=======  ==========================  ======  =====================================================
binance  GET /api/v3/klines          1000    ``startTime=cursor, endTime=window_end - 1`` (inclusive)
bybit    GET /v5/market/kline        1000    ``start=cursor, end=window_end - 1`` (inclusive)
okx      GET /api/v5/market/         100     ``type=HistoryCandles`` (ccxt would pick ``candles``,
         history-candles                     which only reaches the latest 1440 rows, for recent
                                             ``since``), ``before=cursor - 1, after=window_end``
                                             (both exclusive)
=======  ==========================  ======  =====================================================

After a page the cursor moves one minute past the newest row received inside the asked window (a row
from outside it, e.g. a timestamp years ahead, moves nothing); after an empty page it jumps to the
window end, so a multi-hour outage costs one request per page-width and never ends
pagination early. The loop stops once the cursor passes the last candle that can be closed.

ccxt sorts each page ascending but also filters it (rows before ``since``, rows whose timestamp
does not parse, rows beyond ``limit`` are silently dropped). To keep the raw layer "as returned"
-- page-boundary duplicates included, malformed rows caught instead of vanishing -- the rows are
re-read from the page's JSON (``last_json_response``), each with what the venue's own
``parse_ohlcv`` made of it (kept by a hook while ccxt parsed the page, so no row is parsed twice),
validated, and sorted stably by open time. Duplicates are kept (the quality layer dedupes) and
counted; rows outside the day and still-open candles (``open_time + 1m > now``) are dropped and
counted. ccxt is imported when the first source is built, not when this module is.

Rate limits, three layers: ccxt's per-instance throttler (its cost model of the venue's weights),
our per-process :class:`~.retry.Pacer` (``rate_limit_ms`` floor), and the machine-wide
:class:`~.limiter.SharedLimiter`: every HTTP request the ccxt client sends (``load_markets``
included) books its cost in the venue's shared budget just before it goes out, and every
rate-limit / ban answer blocks the venue for all processes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from marketdata_assets.frames import MINUTE_MS, candles_from_parsed_rows, day_bounds_ms
from marketdata_assets.venues.base import (
    FetchResult,
    FetchStats,
    MalformedResponseError,
    UnknownSymbolError,
    VenueError,
    describe_error,
)
from marketdata_assets.venues.limiter import SharedLimiter, endpoint_of, resolve_limiter
from marketdata_assets.venues.retry import (
    Failure,
    FailureKind,
    Pacer,
    RetryExhausted,
    RetryPolicy,
    call_with_retry,
    checked_wait,
    parse_retry_after,
)

TIMEFRAME = "1m"


@dataclass(frozen=True)
class CandleWire:
    """How one venue's kline endpoint is paged and what its answer looks like."""

    page_limit: int
    min_fields: int  # fields per raw row (venues append fields over time; fewer is malformed)
    window_params: Callable[[int, int], dict[str, Any]]  # (cursor, window_end exclusive) -> params
    raw_rows: Callable[[Any], list[Any] | None]  # page JSON -> list of raw rows, None if mis-shaped


def _binance_rows(body: Any) -> list[Any] | None:
    return body if isinstance(body, list) else None


def _bybit_rows(body: Any) -> list[Any] | None:
    if not isinstance(body, dict) or str(body.get("retCode")) != "0":
        return None
    result = body.get("result")
    rows = result.get("list") if isinstance(result, dict) else None
    return rows if isinstance(rows, list) else None


def _okx_rows(body: Any) -> list[Any] | None:
    if not isinstance(body, dict) or str(body.get("code")) != "0":
        return None
    rows = body.get("data")
    return rows if isinstance(rows, list) else None


WIRES: dict[str, CandleWire] = {
    "binance": CandleWire(
        page_limit=1000,
        min_fields=12,
        window_params=lambda start, end: {"startTime": start, "endTime": end - 1},
        raw_rows=_binance_rows,
    ),
    "bybit": CandleWire(
        page_limit=1000,
        min_fields=7,
        window_params=lambda start, end: {"start": start, "end": end - 1},
        raw_rows=_bybit_rows,
    ),
    "okx": CandleWire(
        page_limit=100,
        min_fields=9,
        window_params=lambda start, end: {"type": "HistoryCandles", "before": start - 1, "after": end},
        raw_rows=_okx_rows,
    ),
}
# WIRES covers exactly universe.CANDLE_VENUES (test_architecture.py)

# Wait after a rate-limit answer that carries no Retry-After (Bybit 10006, OKX 50011): the venue's
# limit window, so the retry lands in a fresh window instead of earning Bybit's 403 ban.
RATE_LIMIT_WAIT_S = {"binance": 1.0, "bybit": 5.0, "okx": 2.0}

# A venue answers at most ``limit`` rows (a few more at a page edge when pages overlap); a page over
# twice that is not an answer to what was asked and is refused as malformed before any row is kept
# (the raw layer stores rows as returned, duplicates included).
MAX_PAGE_FACTOR = 2


def closed_horizon_ms(day_end_ms: int, now_ms: int) -> int:
    """Exclusive upper bound of open times that are closed candles of the day at ``now_ms``."""
    last_closed_open = ((now_ms - MINUTE_MS) // MINUTE_MS) * MINUTE_MS
    return min(day_end_ms, last_closed_open + MINUTE_MS)


def next_cursor(cursor: int, window_end: int, timestamps: Sequence[int]) -> int:
    """Where the next page starts: one minute past the newest row of the asked window
    ``[cursor, window_end)``, or the window end after a page holding nothing in it -- always strictly
    forward, never past the window. A row the venue sent from outside the window (a timestamp years
    in the future, or before the venue existed) moves nothing: it cannot make the loop skip minutes."""
    newest = max((t for t in timestamps if cursor <= t < window_end), default=None)
    if newest is None:
        return window_end
    return newest + MINUTE_MS


def strip_query(url: str) -> str:
    """The endpoint of a request URL: no query string, fragment or credentials."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def validate_row(parsed: Sequence[Any], raw: Any, min_fields: int) -> str | None:
    """Why a raw row and its parsed ``[ts, o, h, l, c, v]`` are unusable, or ``None`` when fine.

    Unusable = cannot be placed or read: not a list, too few fields, a timestamp that is not a whole
    minute, a value that does not parse as a number. A value that parses but is wrong (``"NaN"``,
    high < low, negative volume) is data, kept as returned for the quality layer to judge.
    """
    if not isinstance(raw, list | tuple):
        return f"row is {type(raw).__name__}, not a list: {raw!r:.80}"
    if len(raw) < min_fields:
        return f"row has {len(raw)} fields, expected {min_fields}: {raw!r:.120}"
    if len(parsed) < 6:
        return f"row parsed to {len(parsed)} values: {raw!r:.120}"
    ts = parsed[0]
    if not isinstance(ts, int) or isinstance(ts, bool):
        return f"open time {raw[0]!r} is not an integer timestamp: {raw!r:.120}"
    if ts % MINUTE_MS:
        return f"open time {ts} is not on a minute boundary"
    for name, value in zip(("open", "high", "low", "close", "volume"), parsed[1:6], strict=True):
        if not isinstance(value, int | float) or isinstance(value, bool):
            return f"{name} is not a number in row {raw!r:.120}"
    return None


def clean_row(parsed: Sequence[Any], raw: Any, min_fields: int) -> list[Any] | None:
    """``parsed`` as a stored row when it is plainly fine (a list of at least ``min_fields``, an ``int``
    open time on a minute, five ``float`` values): what :func:`validate_row` accepts and the
    ``[int, float x 5]`` it becomes, without its per-value checks. ``None``: ask :func:`validate_row`."""
    if type(raw) is not list or len(raw) < min_fields or len(parsed) < 6:
        return None
    ts, o, h, low, c, v = parsed[:6]
    if type(ts) is not int or ts % MINUTE_MS:
        return None
    if type(o) is not float or type(h) is not float or type(low) is not float:
        return None
    if type(c) is not float or type(v) is not float:
        return None
    return [ts, o, h, low, c, v]


class CcxtCandleSource:
    """Closed 1-minute candles of one spot symbol for one UTC day, from Binance, Bybit or OKX.

    One instance holds one ccxt client (one per venue per run): markets are loaded once, lazily,
    through the retry policy. ``base_url=None`` talks to the real exchange; otherwise the venue
    root (e.g. ``http://127.0.0.1:8765/binance``) the simulator serves.
    """

    def __init__(
        self,
        venue: str,
        base_url: str | None = None,
        *,
        rate_limit_ms: float | None = None,
        timeout_ms: int = 10_000,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        page_limit: int | None = None,
        rate_limit_wait_s: float | None = None,
        shared_limiter: SharedLimiter | bool = True,
    ) -> None:
        """``shared_limiter``: the machine-wide budget (``True``: the venue's documented limits, see
        :mod:`~marketdata_assets.venues.limiter`; ``False``: this process paces itself only)."""
        if venue not in WIRES:
            raise ValueError(f"unknown candle venue {venue!r}; expected one of {', '.join(WIRES)}")
        import ccxt  # heavy (~4 s): paid once, when the first source is built

        from marketdata_assets.venues.endpoints import make_ccxt_exchange

        self.venue = venue
        self.base_url = base_url
        self.retry = retry or RetryPolicy()
        self.wire = WIRES[venue]
        self.page_limit = min(page_limit or self.wire.page_limit, self.wire.page_limit)
        self.rate_limit_wait_s = (
            RATE_LIMIT_WAIT_S[venue] if rate_limit_wait_s is None else float(rate_limit_wait_s)
        )
        self._ccxt = ccxt
        self._clock = clock
        self._sleep = sleep
        # ccxt's throttler keeps its own per-endpoint cost model (it follows the venues' published
        # weights: OKX history-candles 110 ms x 1, Bybit kline 20 ms x 5, ...); ``rate_limit_ms`` is
        # an extra floor between any two requests, enforced by our pacer. Overriding ccxt's unit
        # instead would scale every cost and, set low, exceed the venue's budget (measured on OKX).
        self._exchange = make_ccxt_exchange(venue, base_url, timeout_ms=timeout_ms, enable_rate_limit=True)
        self._exchange.enableLastJsonResponse = True
        spacing_ms = rate_limit_ms if rate_limit_ms is not None else float(self._exchange.rateLimit)
        self._pacer = Pacer.shared(f"{venue}|{base_url or 'real'}", spacing_ms / 1000.0)
        self.limiter = resolve_limiter(shared_limiter, venue, base_url)
        self._markets_loaded = False
        self.market_stats = FetchStats()  # the one-off load_markets() call(s)
        self._last_status: int | None = None
        self._last_headers: Mapping[str, str] | None = None
        self._last_url: str = ""
        # (raw row, market, parsed row) for each row ccxt parsed in the current page's fetch_ohlcv
        self._parsed_by_ccxt: list[tuple[Any, Any, Any]] = []
        self._install_response_hook()
        self._install_limiter_hook()
        self._install_parse_hook()

    # -- public API -------------------------------------------------------------------------

    def symbols(self) -> list[str]:
        """Unified spot symbols the venue lists (``BTC/USDT``...)."""
        self._ensure_markets(None, None)
        return sorted(
            symbol
            for symbol, market in self._exchange.markets.items()
            if market.get("spot", True) and market.get("active") is not False
        )

    def check_symbols(self, symbols: Sequence[str]) -> None:
        """Raise :class:`UnknownSymbolError` naming every symbol the venue does not list."""
        self._ensure_markets(None, None)
        self._check_listed(symbols)

    def _check_listed(self, symbols: Sequence[str]) -> None:
        markets = self._exchange.markets or {}
        unknown = [s for s in symbols if s not in markets]
        if unknown:
            raise UnknownSymbolError(self.venue, unknown, self.symbols())

    def fetch_day(self, symbol: str, day: date) -> FetchResult:
        """All closed 1-minute candles of ``symbol`` (unified, ``BTC/USDT``) in the UTC ``day``."""
        day_start, day_end = day_bounds_ms(day)
        return self._fetch_window(symbol, day, day_start, day_end)

    def fetch_range(self, symbol: str, start_ms: int, end_ms: int) -> FetchResult:
        """The closed 1-minute candles of ``symbol`` with open time in ``[start_ms, end_ms)``: the same
        pagination, retries and shared budget as :meth:`fetch_day`, for a window that may be minutes
        long (the live service's poll) or cross a day boundary. ``day`` of the result (and of any error)
        is the UTC day of ``start_ms``."""
        if start_ms % MINUTE_MS or end_ms % MINUTE_MS:
            raise ValueError(f"range [{start_ms}, {end_ms}) is not on minute boundaries")
        return self._fetch_window(
            symbol, datetime.fromtimestamp(start_ms / 1000, tz=UTC).date(), start_ms, end_ms
        )

    def _fetch_window(self, symbol: str, day: date, window_start: int, window_stop: int) -> FetchResult:
        started = time.monotonic()
        self._ensure_markets(symbol, day)
        self._check_listed([symbol])
        stats = FetchStats()
        now_ms = int(self._clock() * 1000)
        horizon = closed_horizon_ms(window_stop, now_ms)
        rows: list[list[Any]] = []
        seen: set[int] = set()
        cursor = window_start
        while cursor < horizon:
            window_end = min(cursor + self.page_limit * MINUTE_MS, window_stop)
            page = self._fetch_page(symbol, day, cursor, window_end, stats)
            stats.pages += 1
            stats.rows_received += len(page)
            if not page:
                stats.empty_pages += 1
            for row in page:
                if row[0] in seen:
                    stats.duplicate_rows += 1
                seen.add(row[0])
            rows.extend(page)
            cursor = next_cursor(cursor, window_end, [r[0] for r in page])

        in_day = [r for r in rows if window_start <= r[0] < window_stop]
        closed = [r for r in in_day if r[0] + MINUTE_MS <= now_ms]
        stats.elapsed_s = round(time.monotonic() - started, 3)
        return FetchResult(
            venue=self.venue,
            instrument=symbol,
            day=day,
            frame=candles_from_parsed_rows(closed),
            stats=stats,
            open_candles_dropped=len(in_day) - len(closed),
            rows_outside_day=len(rows) - len(in_day),
            resolution_s=60,
        )

    def close(self) -> None:
        self._exchange.close()

    def __enter__(self) -> CcxtCandleSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------

    def _install_response_hook(self) -> None:
        """Record status, headers and URL of every HTTP answer: ccxt keeps neither the status nor
        ``Retry-After`` once it has turned an answer into an exception."""
        original = self._exchange.on_rest_response

        def on_rest_response(code: Any, reason: Any, url: str, method: str, headers: Any, *rest: Any) -> Any:
            self._last_status = int(code) if code is not None else None
            self._last_headers = headers
            self._last_url = url
            return original(code, reason, url, method, headers, *rest)

        self._exchange.on_rest_response = on_rest_response

    def _install_limiter_hook(self) -> None:
        """Book every HTTP request in the shared budget right before ccxt sends it (after ccxt's own
        throttle), so retries, ``load_markets`` and any call ccxt makes on its own are counted."""
        limiter = self.limiter
        if limiter is None:
            return
        send = self._exchange.fetch
        max_wait = self.retry.max_ban_wait_s

        def fetch(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
            limiter.acquire(endpoint_of(url), max_block_wait_s=max_wait)
            return send(url, method, headers, body)

        self._exchange.fetch = fetch

    def _install_parse_hook(self) -> None:
        """Keep what ccxt's ``parse_ohlcv`` makes of each row of a page: ``_rows_of_last_page`` reads the
        same rows from the page's JSON and would otherwise parse each one a second time. ccxt sorts and
        filters its own result (which we do not use), but parses every row first, in order."""
        original = self._exchange.parse_ohlcv
        parsed = self._parsed_by_ccxt

        def parse_ohlcv(ohlcv: Any, market: Any = None) -> Any:
            row = original(ohlcv, market)
            parsed.append((ohlcv, market, row))
            return row

        self._exchange.parse_ohlcv = parse_ohlcv

    def _ensure_markets(self, symbol: str | None, day: date | None) -> None:
        """Load the venue's markets once; a failure names the symbol/day that needed them."""
        if self._markets_loaded:
            return
        try:
            self._call(lambda: self._exchange.load_markets(), self.market_stats)
        except RetryExhausted as exc:
            raise VenueError(
                self.venue,
                symbol,
                day,
                f"could not load markets: {exc.reason}",
                self.market_stats.last_error,
            ) from exc
        self._markets_loaded = True

    def _fetch_page(
        self, symbol: str, day: date, cursor: int, window_end: int, stats: FetchStats
    ) -> list[list[Any]]:
        def attempt() -> list[list[Any]]:
            self._exchange.last_json_response = None
            self._parsed_by_ccxt.clear()
            self._exchange.fetch_ohlcv(
                symbol,
                TIMEFRAME,
                since=cursor,
                limit=self.page_limit,
                params=self.wire.window_params(cursor, window_end),
            )
            if self._last_url:
                stats.source_url = strip_query(self._last_url)
            return self._rows_of_last_page(symbol, day)

        try:
            return self._call(attempt, stats)
        except RetryExhausted as exc:
            window = f"{_iso(cursor)}..{_iso(window_end)}"
            if exc.failure.kind is FailureKind.MALFORMED:
                inner = exc.last_error
                ours = isinstance(inner, MalformedResponseError)
                raise MalformedResponseError(
                    self.venue,
                    symbol,
                    day,
                    f"{inner.what if ours else 'unparseable page'} [page {window}, {exc.attempts} attempts]",
                    None if ours else stats.last_error,
                ) from exc
            raise VenueError(
                self.venue, symbol, day, f"{exc.reason} fetching page {window}", stats.last_error
            ) from exc

    def _rows_of_last_page(self, symbol: str, day: date) -> list[list[Any]]:
        body = self._exchange.last_json_response
        raw_rows = self.wire.raw_rows(body)
        if raw_rows is None:
            shape = "no JSON body" if body is None else f"unexpected JSON {str(body)[:120]!r}"
            raise MalformedResponseError(self.venue, symbol, day, f"kline answer has {shape}")
        if len(raw_rows) > MAX_PAGE_FACTOR * self.page_limit:
            raise MalformedResponseError(
                self.venue,
                symbol,
                day,
                f"page holds {len(raw_rows)} rows, more than {MAX_PAGE_FACTOR} x the {self.page_limit} asked for",
            )
        market = self._exchange.market(symbol)
        by_ccxt = self._parsed_of(raw_rows, market)
        min_fields = self.wire.min_fields
        parsed = []
        for i, raw in enumerate(raw_rows):
            if by_ccxt is not None:
                row = by_ccxt[i]
            else:
                try:
                    row = self._exchange.parse_ohlcv(raw, market)
                except Exception as exc:  # noqa: BLE001 - any parse failure is a malformed row
                    raise MalformedResponseError(
                        self.venue, symbol, day, f"unparseable row {raw!r:.120}", exc
                    ) from exc
            clean = clean_row(row, raw, min_fields)
            if clean is None:
                problem = validate_row(row, raw, min_fields)
                if problem:
                    raise MalformedResponseError(self.venue, symbol, day, problem)
                clean = [int(row[0]), *(float(v) for v in row[1:6])]
            parsed.append(clean)
        parsed.sort(key=lambda r: r[0])  # stable: duplicates keep their order
        return parsed

    def _parsed_of(self, raw_rows: Any, market: Any) -> list[Any] | None:
        """ccxt's parse of exactly these row objects with this market, in order, or None."""
        recorded = self._parsed_by_ccxt
        if not isinstance(raw_rows, list) or len(recorded) != len(raw_rows):
            return None
        for (raw, used, _), row in zip(recorded, raw_rows, strict=True):
            if raw is not row or used is not market:
                return None
        return [row for _, _, row in recorded]

    def _call(self, fn: Callable[[], Any], stats: FetchStats) -> Any:
        def counted() -> Any:
            stats.requests += 1
            self._last_status = None
            self._last_headers = None
            return fn()

        def on_retry(retry: int, failure: Failure, delay: float, exc: BaseException) -> None:
            stats.retries += 1
            stats.waited_s = round(stats.waited_s + delay, 3)
            stats.last_error = self._describe(exc)
            if failure.kind in (FailureKind.RATE_LIMITED, FailureKind.BANNED):
                stats.rate_limited += 1

        try:
            return call_with_retry(
                counted,
                classify=self.classify,
                policy=self.retry,
                sleep=self._sleep,
                on_retry=on_retry,
                pacer=self._pacer,
                limiter=self.limiter,
            )
        except RetryExhausted as exc:
            stats.last_error = self._describe(exc.last_error)
            if exc.failure.kind in (FailureKind.RATE_LIMITED, FailureKind.BANNED):
                stats.rate_limited += 1
            raise

    def _describe(self, exc: BaseException) -> str | None:
        """``describe_error`` plus the HTTP status of the answer, which ccxt's message may omit."""
        text = describe_error(exc)
        if text and self._last_status is not None and str(self._last_status) not in text:
            text = f"HTTP {self._last_status}: {text}"
        return text

    def classify(self, exc: BaseException) -> Failure:
        """Turn a failed attempt into a retry decision, using the HTTP status ccxt hides."""
        ccxt = self._ccxt
        status = self._last_status
        retry_after = self._retry_after()
        detail = f"HTTP {status}" if status is not None else type(exc).__name__
        if isinstance(exc, MalformedResponseError):
            return Failure(FailureKind.MALFORMED, detail=detail)
        if status in (418, 403):  # Binance IP ban / Bybit ban (403 on Binance: WAF limit)
            return Failure(FailureKind.BANNED, retry_after, detail)
        if status == 429 or isinstance(exc, ccxt.RateLimitExceeded | ccxt.DDoSProtection):
            wait = retry_after if retry_after is not None else self.rate_limit_wait_s
            return Failure(FailureKind.RATE_LIMITED, wait, detail)
        if status is not None and (status >= 500 or status == 408):
            return Failure(FailureKind.TRANSIENT, detail=detail)
        if isinstance(
            exc,
            ccxt.BadRequest | ccxt.AuthenticationError | ccxt.NotSupported | ccxt.ArgumentsRequired,
        ):
            return Failure(FailureKind.PERMANENT, detail=detail)
        if status is not None and 400 <= status < 500:  # 404 = wrong base URL, 400 = bad request
            return Failure(FailureKind.PERMANENT, detail=detail)
        if isinstance(exc, ccxt.BadResponse):
            return Failure(FailureKind.MALFORMED, detail=detail)
        if isinstance(exc, ccxt.NetworkError):  # timeouts, dropped connections, maintenance
            return Failure(FailureKind.TRANSIENT, detail=detail)
        if isinstance(exc, ccxt.ExchangeError):
            # an unmapped venue error code on a 2xx answer (e.g. Bybit 10016 "system error"):
            # retried a bounded number of times
            return Failure(FailureKind.TRANSIENT, detail=detail)
        if isinstance(exc, TypeError | ValueError | KeyError | IndexError | AttributeError):
            return Failure(FailureKind.MALFORMED, detail=detail)  # ccxt choked on a garbage body
        return Failure(FailureKind.PERMANENT, detail=detail)

    def _retry_after(self) -> float | None:
        headers = self._last_headers
        if not headers:
            return None
        seconds = parse_retry_after(headers, now=self._clock)
        if seconds is not None:
            return seconds
        # Bybit: X-Bapi-Limit-Reset-Timestamp (ms) says when the limit window reopens
        for key, value in headers.items():
            if key.lower() == "x-bapi-limit-reset-timestamp":
                try:
                    reset_s = float(value) / 1000.0
                except ValueError:
                    reset_s = math.nan
                wait = checked_wait(reset_s, f"X-Bapi-Limit-Reset-Timestamp {str(value)[:40]!r}")
                return None if wait is None else max(wait - self._clock(), 0.0)
        return None


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M")
