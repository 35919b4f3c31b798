"""Deribit DVOL (30-day implied volatility index) of one currency for one UTC day, over plain HTTP.

``GET {base}/api/v2/public/get_volatility_index_data?currency=BTC&start_timestamp=..&end_timestamp=..
&resolution=60`` answers ``{"result": {"data": [[ts, open, high, low, close], ...], "continuation":
<ts or null>}}``. Paging goes backwards: ``continuation`` is the next request's ``end_timestamp``,
``null`` means done. A continuation that does not move back is a malformed answer (it would loop
forever). JSON-RPC errors: 10028 ``too_many_requests`` is retried with backoff; a few "try again"
codes are retried; every other code fails at once with a :class:`VenueError` carrying the code and
message.

Resolution policy (Deribit resolutions are in seconds: ``1, 60, 3600, 43200, 1D``):
:func:`resolution_for_day` picks ``"60"`` (1 minute) for days within ``minute_history_days`` of today
and ``"3600"`` (hourly) before that. The default horizon is 30 days: Deribit documents no retention
for fine DVOL resolutions, 30 days of 1-minute points is what a nightly job plus a month of catch-up
needs, and it matches ``DvolSettings.minute_history_days``. If a 1-minute request comes back empty
for a day that should have data (on or after DVOL's first day, 2021-03-24, and already begun), the
day is fetched hourly instead and ``FetchResult.resolution_s`` / ``notes`` say so.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any

import httpx

from marketdata_assets.frames import day_bounds_ms, dvol_from_rows
from marketdata_assets.universe import DVOL_CURRENCIES, DVOL_FIRST_DAY
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
    parse_retry_after,
)

VENUE = "deribit"
DERIBIT_REAL_BASE_URL = "https://www.deribit.com"
DVOL_PATH = "/api/v2/public/get_volatility_index_data"
DEFAULT_MINUTE_HISTORY_DAYS = 30
MINUTE_RESOLUTION = "60"
HOURLY_RESOLUTION = "3600"
RESOLUTION_SECONDS = {"1": 1, "60": 60, "3600": 3600, "43200": 43200, "1D": 86400}

RATE_LIMIT_CODES = {10028}  # too_many_requests
RETRYABLE_CODES = {10040, 11051, 13028}  # retry, system_maintenance, temporarily_unavailable


def resolution_for_day(day: date, today: date, minute_history_days: int = DEFAULT_MINUTE_HISTORY_DAYS) -> str:
    """``"60"`` (1-minute) for days at most ``minute_history_days`` before ``today``, else ``"3600"``."""
    return MINUTE_RESOLUTION if (today - day).days <= minute_history_days else HOURLY_RESOLUTION


def normalise_resolution(resolution: str | int) -> str:
    """Deribit's resolution token for ``resolution`` (seconds as int/str, or ``"1D"``)."""
    token = str(resolution).strip().upper()
    token = "1D" if token in ("1D", "86400") else token
    if token not in RESOLUTION_SECONDS:
        raise ValueError(
            f"unsupported DVOL resolution {resolution!r}; Deribit accepts seconds "
            f"{', '.join(RESOLUTION_SECONDS)}"
        )
    return token


class DeribitRpcError(Exception):
    """A JSON-RPC ``error`` object (or an HTTP error status) in Deribit's answer."""

    def __init__(
        self,
        code: int | None,
        message: str,
        status: int,
        retry_after_s: float | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.status = status
        self.retry_after_s = retry_after_s
        label = f"code {code}" if code is not None else "no JSON-RPC code"
        super().__init__(f"HTTP {status}, {label}: {message}")


def classify(exc: BaseException) -> Failure:
    """Retry decision for one failed DVOL request."""
    if isinstance(exc, MalformedResponseError):
        return Failure(FailureKind.MALFORMED, detail=exc.what)
    if isinstance(exc, DeribitRpcError):
        detail = str(exc)
        if exc.code in RATE_LIMIT_CODES or exc.status == 429:
            return Failure(FailureKind.RATE_LIMITED, exc.retry_after_s, detail)
        if exc.status in (418, 403) and exc.code is None:
            return Failure(FailureKind.BANNED, exc.retry_after_s, detail)
        if exc.code in RETRYABLE_CODES or exc.status >= 500 or exc.status == 408:
            return Failure(FailureKind.TRANSIENT, exc.retry_after_s, detail)
        return Failure(FailureKind.PERMANENT, detail=detail)
    if isinstance(exc, httpx.TimeoutException | httpx.TransportError | httpx.RemoteProtocolError):
        return Failure(FailureKind.TRANSIENT, detail=type(exc).__name__)
    return Failure(FailureKind.PERMANENT, detail=type(exc).__name__)


class DeribitDvolSource:
    """DVOL points of BTC or ETH for one UTC day; one instance (one HTTP client) per run."""

    venue = VENUE

    def __init__(
        self,
        base_url: str | None = None,
        *,
        client: httpx.Client | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        timeout_ms: int = 10_000,
        rate_limit_ms: float | None = 100.0,
        minute_history_days: int = DEFAULT_MINUTE_HISTORY_DAYS,
        fallback_to_hourly: bool = True,
        rate_limit_wait_s: float = 1.0,
        shared_limiter: SharedLimiter | bool = True,
    ) -> None:
        """``shared_limiter``: the machine-wide budget (``True``: Deribit's documented limits, see
        :mod:`~marketdata_assets.venues.limiter`; ``False``: this process paces itself only)."""
        self.base_url = (base_url or DERIBIT_REAL_BASE_URL).rstrip("/")
        self.url = self.base_url + DVOL_PATH
        self.retry = retry or RetryPolicy()
        self.minute_history_days = minute_history_days
        self.fallback_to_hourly = fallback_to_hourly
        self.rate_limit_wait_s = rate_limit_wait_s
        self._clock = clock
        self._sleep = sleep
        self._own_client = client is None
        self._client = client or httpx.Client(timeout=timeout_ms / 1000.0)
        self._timeout_s = timeout_ms / 1000.0
        self._pacer = Pacer.shared(f"{VENUE}|{self.base_url}", (rate_limit_ms or 0.0) / 1000.0)
        self.limiter = resolve_limiter(shared_limiter, VENUE, base_url)
        self._endpoint = endpoint_of(self.url)

    def resolution_for(self, day: date) -> str:
        """The resolution the policy picks for ``day`` today."""
        today = datetime.fromtimestamp(self._clock(), tz=UTC).date()
        return resolution_for_day(day, today, self.minute_history_days)

    def fetch_day(self, currency: str, day: date, resolution: str | int | None = None) -> FetchResult:
        """Closed DVOL points of ``currency`` in the UTC ``day`` (resolution from the policy if None)."""
        started = time.monotonic()
        code = currency.strip().upper()
        if code not in DVOL_CURRENCIES:
            raise UnknownSymbolError(VENUE, [currency], DVOL_CURRENCIES)
        token = normalise_resolution(resolution) if resolution is not None else self.resolution_for(day)
        stats = FetchStats(source_url=self.url)
        result = self._fetch(code, day, token, stats)
        if (
            self.fallback_to_hourly
            and token == MINUTE_RESOLUTION
            and result.frame.empty
            and self._should_have_data(day)
        ):
            result = self._fetch(code, day, HOURLY_RESOLUTION, stats)
            result.notes.append(
                f"1-minute DVOL came back empty for {day.isoformat()}; fell back to hourly (3600)"
            )
        stats.elapsed_s = round(time.monotonic() - started, 3)
        return result

    def close(self) -> None:
        if self._own_client:
            self._client.close()

    def __enter__(self) -> DeribitDvolSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------

    def _classify(self, exc: BaseException) -> Failure:
        """:func:`classify`, with a floor wait for 10028 answers that carry no Retry-After."""
        failure = classify(exc)
        if failure.kind is FailureKind.RATE_LIMITED and failure.retry_after_s is None:
            return Failure(failure.kind, self.rate_limit_wait_s, failure.detail)
        return failure

    def _should_have_data(self, day: date) -> bool:
        day_start, _ = day_bounds_ms(day)
        return day >= DVOL_FIRST_DAY and day_start + 60_000 <= self._clock() * 1000

    def _fetch(self, currency: str, day: date, resolution: str, stats: FetchStats) -> FetchResult:
        day_start, day_end = day_bounds_ms(day)
        step_ms = RESOLUTION_SECONDS[resolution] * 1000
        now_ms = int(self._clock() * 1000)
        rows: list[list[float]] = []
        seen: set[int] = set()
        end = min(day_end - 1, now_ms)  # nothing after now exists yet
        while end >= day_start:
            params = {
                "currency": currency,
                "start_timestamp": day_start,
                "end_timestamp": end,
                "resolution": resolution,
            }
            data, continuation = self._page(params, currency, day, stats)
            stats.pages += 1
            stats.rows_received += len(data)
            if not data:
                stats.empty_pages += 1
            for row in data:
                if row[0] in seen:
                    stats.duplicate_rows += 1
                seen.add(int(row[0]))
            rows.extend(data)
            if continuation is None or continuation < day_start:
                break
            if continuation >= end:
                raise MalformedResponseError(
                    VENUE,
                    currency,
                    day,
                    f"continuation {continuation} does not move back from end_timestamp {end}",
                )
            end = continuation

        in_day = [r for r in rows if day_start <= r[0] < day_end]
        closed = [r for r in in_day if r[0] + step_ms <= now_ms]
        return FetchResult(
            venue=VENUE,
            instrument=currency,
            day=day,
            frame=dvol_from_rows(closed),
            stats=stats,
            open_candles_dropped=len(in_day) - len(closed),
            rows_outside_day=len(rows) - len(in_day),
            resolution_s=RESOLUTION_SECONDS[resolution],
        )

    def _page(
        self, params: dict[str, Any], currency: str, day: date, stats: FetchStats
    ) -> tuple[list[list[float]], int | None]:
        def attempt() -> tuple[list[list[float]], int | None]:
            if self.limiter is not None:
                self.limiter.acquire(self._endpoint, max_block_wait_s=self.retry.max_ban_wait_s)
            stats.requests += 1
            response = self._client.get(self.url, params=params, timeout=self._timeout_s)
            return self._parse(response, currency, day)

        def on_retry(retry: int, failure: Failure, delay: float, exc: BaseException) -> None:
            stats.retries += 1
            stats.waited_s = round(stats.waited_s + delay, 3)
            stats.last_error = describe_error(exc)
            if failure.kind in (FailureKind.RATE_LIMITED, FailureKind.BANNED):
                stats.rate_limited += 1

        try:
            return call_with_retry(
                attempt,
                classify=self._classify,
                policy=self.retry,
                sleep=self._sleep,
                on_retry=on_retry,
                pacer=self._pacer,
                limiter=self.limiter,
            )
        except RetryExhausted as exc:
            stats.last_error = describe_error(exc.last_error)
            window = f"end_timestamp={params['end_timestamp']} resolution={params['resolution']}"
            if exc.failure.kind is FailureKind.MALFORMED and isinstance(
                exc.last_error, MalformedResponseError
            ):
                raise MalformedResponseError(
                    VENUE,
                    currency,
                    day,
                    f"{exc.last_error.what} [{window}, {exc.attempts} attempts]",
                    exc.last_error,
                ) from exc
            last = exc.last_error
            if isinstance(last, DeribitRpcError) and last.code is not None:
                message = f"{exc.reason}: Deribit error {last.code} {last.message!r} [{window}]"
            else:
                message = f"{exc.reason} [{window}]"
            raise VenueError(VENUE, currency, day, message, last) from exc

    def _parse(
        self, response: httpx.Response, currency: str, day: date
    ) -> tuple[list[list[float]], int | None]:
        retry_after = parse_retry_after(_headers(response.headers), now=self._clock)
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            error = body["error"]
            code = error.get("code")
            raise DeribitRpcError(
                int(code) if isinstance(code, int | str) and str(code).lstrip("-").isdigit() else None,
                str(error.get("message", "")),
                response.status_code,
                retry_after,
            )
        if response.status_code >= 400:
            raise DeribitRpcError(None, response.text[:200], response.status_code, retry_after)
        if not isinstance(body, dict):
            raise MalformedResponseError(
                VENUE, currency, day, f"body is not a JSON object: {response.text[:120]!r}"
            )
        result = body.get("result")
        if not isinstance(result, dict) or not isinstance(result.get("data"), list):
            raise MalformedResponseError(VENUE, currency, day, f"no result.data list in {str(body)[:120]!r}")
        continuation = result.get("continuation")
        if continuation is not None and (
            isinstance(continuation, bool) or not isinstance(continuation, int | float)
        ):
            raise MalformedResponseError(
                VENUE, currency, day, f"continuation {continuation!r} is not a timestamp"
            )
        rows = [_dvol_row(raw, currency, day) for raw in result["data"]]
        return rows, int(continuation) if continuation is not None else None


def _dvol_row(raw: Any, currency: str, day: date) -> list[float]:
    """``[ts, o, h, l, c]`` as ints/floats. A JSON ``null`` price (JSON has no NaN) becomes NaN and is
    kept for the quality layer; a missing/non-numeric timestamp or a non-numeric price is malformed."""
    if not isinstance(raw, list) or len(raw) < 5:
        raise MalformedResponseError(VENUE, currency, day, f"DVOL row {raw!r:.120} is not [ts, o, h, l, c]")
    ts, *prices = raw[:5]
    if (
        isinstance(ts, bool)
        or not isinstance(ts, int | float)
        or not math.isfinite(ts)
        or (isinstance(ts, float) and not ts.is_integer())
    ):
        raise MalformedResponseError(
            VENUE, currency, day, f"timestamp {ts!r} is not whole ms in {raw!r:.120}"
        )
    if any(v is not None and (isinstance(v, bool) or not isinstance(v, int | float)) for v in prices):
        raise MalformedResponseError(VENUE, currency, day, f"non-numeric value in DVOL row {raw!r:.120}")
    return [int(ts), *(math.nan if v is None else float(v) for v in prices)]


def _headers(headers: httpx.Headers) -> Mapping[str, str]:
    return {k: v for k, v in headers.items()}
