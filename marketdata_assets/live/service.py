"""The live service's engine: fill the buffers at start, then poll each minute's closed candles.

:class:`LiveService` holds one :class:`~.buffers.SeriesBuffer` per configured exchange x symbol.

* **start** -- each buffer is seeded from the served Parquet through
  :class:`~marketdata_assets.client.MarketDataClient` (the last ``length`` candles of every timeframe,
  up to the end of the last served day), then the venue's REST history fills the part not served yet
  (at most ``history_days`` whole UTC days back plus today, so the open 1d bin is complete).
* **poll** -- shortly after each minute closes (``poll_delay_s``), every venue is asked, in parallel and
  each through its own source (:meth:`CcxtCandleSource.fetch_range`: pagination, retries, the shared
  machine-wide budget), for the minutes from its buffers' horizon to the last closed minute. Rows are
  validated per UTC day with the batch rules (:func:`~marketdata_assets.quality.clean_partition`) and
  settle the buffers; the candles that closed are published (in-process bus, Redis Streams).
* **a failing venue** keeps its horizon where it was and is marked ``failing`` with the error; the other
  venues go on. When it answers again, the missed minutes are fetched in one go: nothing is skipped.

Time comes from one injectable ``clock`` (epoch seconds) -- the same one a test gives the simulator --
so tests step minutes instantly with :meth:`LiveService.poll_once`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

import pandas as pd

from marketdata_assets.frames import DAY_MS, MINUTE_MS, symbol_key
from marketdata_assets.live.buffers import LIVE_TIMEFRAMES, Candle, SeriesBuffer, bin_ms
from marketdata_assets.live.events import CandleEvent, EventBus, RedisStreamPublisher, series_name
from marketdata_assets.venues.base import describe_error

Clock = Callable[[], float]


class RangeSource(Protocol):
    venue: str

    def fetch_range(self, symbol: str, start_ms: int, end_ms: int) -> Any: ...


@dataclass(frozen=True)
class SeriesSpec:
    exchange: str
    symbol: str  # unified, BTC/USDT

    @property
    def key(self) -> str:
        return symbol_key(self.symbol)


@dataclass
class VenueHealth:
    venue: str
    status: str = "starting"  # starting | ok | failing
    last_success_ms: int | None = None
    last_attempt_ms: int | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    fetches: int = 0
    fetch_seconds: float = 0.0
    requests: int = 0
    retries: int = 0

    def as_json(self, now_ms: int) -> dict[str, Any]:
        return {
            "status": self.status,
            "last_success": _iso(self.last_success_ms),
            "seconds_since_success": None
            if self.last_success_ms is None
            else round((now_ms - self.last_success_ms) / 1000, 3),
            "last_error": self.last_error,
            "consecutive_failures": self.consecutive_failures,
        }


@dataclass
class Metrics:
    requests: dict[tuple[str, int], int] = field(default_factory=dict)  # (route, status) -> count
    events_published: int = 0
    polls: int = 0


class LiveService:
    """Buffers, venue health and event publication for a set of exchange x symbol series."""

    def __init__(
        self,
        series: Sequence[SeriesSpec],
        sources: dict[str, RangeSource],
        *,
        root: Any = None,
        clock: Clock = time.time,
        buffer_length: int = 100,
        history_days: int = 1,
        poll_delay_s: float = 2.0,
        bus: EventBus | None = None,
        redis: RedisStreamPublisher | None = None,
    ) -> None:
        missing = sorted({s.exchange for s in series} - set(sources))
        if missing:
            raise ValueError(f"no source for venue(s) {', '.join(missing)}")
        self.series = list(series)
        self.sources = sources
        self.root = root
        self.clock = clock
        self.buffer_length = buffer_length
        self.history_days = history_days
        self.poll_delay_s = poll_delay_s
        self.bus = bus or EventBus()
        self.redis = redis
        self.redis_error: str | None = None
        self.buffers: dict[tuple[str, str], SeriesBuffer] = {
            (s.exchange, s.key): SeriesBuffer(s.exchange, s.key, buffer_length) for s in self.series
        }
        self.health: dict[str, VenueHealth] = {v: VenueHealth(v) for v in self.venues}
        self.metrics = Metrics()
        self.lock = threading.RLock()
        self.started = False

    @property
    def venues(self) -> list[str]:
        return list(dict.fromkeys(s.exchange for s in self.series))

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def buffer(self, exchange: str, key: str) -> SeriesBuffer | None:
        return self.buffers.get((exchange, key))

    # -- start ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Seed every buffer from the served layer, then fill the rest from the venues (no events on
        the bus: nobody can have missed them; Redis gets what its streams do not hold yet)."""
        for spec in self.series:
            self._seed(spec)
        self._poll(publish=False)
        self.started = True

    def _seed(self, spec: SeriesSpec) -> None:
        if self.root is None:
            return
        from marketdata_assets.client import MarketDataClient, MarketDataError

        client = MarketDataClient(root=self.root)
        try:
            inventory = client.available()
        except Exception:  # noqa: BLE001 - nothing served yet (no catalog, no files)
            return
        rows = inventory[
            (inventory["exchange"] == spec.exchange)
            & (inventory["symbol"] == spec.key)
            & (inventory["timeframe"] == "1m")
        ]
        if rows.empty:
            return
        last = pd.Timestamp(rows["last"].iloc[0])
        last = last.tz_localize("UTC") if last.tzinfo is None else last.tz_convert("UTC")
        through = (int(last.value // 1_000_000) // DAY_MS + 1) * DAY_MS
        served: dict[str, pd.DataFrame] = {}
        for timeframe in LIVE_TIMEFRAMES:
            start = through - self.buffer_length * bin_ms(timeframe)
            try:
                frame = client.get_historical_data(
                    spec.key,
                    spec.exchange,
                    timeframe,
                    pd.Timestamp(start, unit="ms", tz="UTC"),
                    pd.Timestamp(through, unit="ms", tz="UTC"),
                )
            except MarketDataError:
                continue
            served[timeframe] = frame.reset_index()
        with self.lock:
            self.buffers[(spec.exchange, spec.key)].seed(served, through)

    # -- polling --------------------------------------------------------------------------------

    def poll_once(self) -> list[CandleEvent]:
        """Fetch every closed minute not settled yet, from every venue; publish what closed."""
        return self._poll(publish=True)

    def _poll(self, publish: bool) -> list[CandleEvent]:
        now_ms = self.now_ms()
        horizon = now_ms // MINUTE_MS * MINUTE_MS  # minutes opening before this are closed
        by_venue: dict[str, list[SeriesSpec]] = {}
        for spec in self.series:
            by_venue.setdefault(spec.exchange, []).append(spec)
        with ThreadPoolExecutor(max_workers=max(len(by_venue), 1), thread_name_prefix="live-poll") as pool:
            futures = [
                pool.submit(self._poll_venue, venue, specs, horizon, now_ms)
                for venue, specs in by_venue.items()
            ]
            events = [e for f in futures for e in f.result()]
        with self.lock:
            self.metrics.polls += 1
        if publish:
            self.bus.publish(events)
            with self.lock:
                self.metrics.events_published += len(events)
        self._sync_redis()
        return events

    def _poll_venue(
        self, venue: str, specs: list[SeriesSpec], horizon: int, now_ms: int
    ) -> list[CandleEvent]:
        from marketdata_assets.venues.base import VenueError

        source = self.sources[venue]
        health = self.health[venue]
        events: list[CandleEvent] = []
        # an empty buffer starts history_days before today; a buffer behind by more than a day beyond
        # that (a long outage) resumes there too, the skipped minutes recorded as an 'unavailable' gap
        floor = (horizon // DAY_MS - self.history_days) * DAY_MS
        for spec in specs:
            buffer = self.buffers[(spec.exchange, spec.key)]
            through = buffer.through_ms
            start = floor if through is None or through < floor - DAY_MS else through
            if start >= horizon:
                continue
            started = time.monotonic()
            with self.lock:
                health.last_attempt_ms = now_ms
            try:
                result = source.fetch_range(spec.symbol, start, horizon)
                valid, quarantined = validate_minutes(result.frame)
            except (VenueError, ValueError, OSError) as exc:
                with self.lock:
                    health.status = "failing"
                    health.last_error = describe_error(exc)
                    health.consecutive_failures += 1
                    health.fetch_seconds += time.monotonic() - started
                    health.fetches += 1
                break  # the venue is down: its other series wait for the next poll too
            with self.lock:
                health.fetches += 1
                health.fetch_seconds += time.monotonic() - started
                health.requests += result.stats.requests
                health.retries += result.stats.retries
                health.status = "ok"
                health.last_success_ms = now_ms
                health.last_error = None
                health.consecutive_failures = 0
                closed = buffer.add_minutes(valid, start, horizon, quarantined)
            events += [CandleEvent(spec.exchange, spec.key, c) for c in closed]
        return events

    def _sync_redis(self) -> None:
        if self.redis is None:
            return
        try:
            for (exchange, key), buffer in self.buffers.items():
                for timeframe in LIVE_TIMEFRAMES:
                    with self.lock:
                        candles = list(buffer.candles[timeframe])
                    self.redis.sync(series_name(exchange, key, timeframe), candles)
            self.redis_error = None
        except Exception as exc:  # noqa: BLE001 - Redis down: keep serving, say so, catch up later
            self.redis_error = describe_error(exc)

    def run(self, stop: threading.Event, sleep: Callable[[float], None] | None = None) -> None:
        """Poll shortly after each minute closes until ``stop`` is set (the service's background
        thread). Sleeps on the real clock in short steps, so ``stop`` is honoured within a second."""
        while not stop.is_set():
            now = self.clock()
            wake = (now // 60 + 1) * 60 + self.poll_delay_s
            while not stop.is_set() and self.clock() < wake:
                (sleep or stop.wait)(min(1.0, max(wake - self.clock(), 0.01)))
            if stop.is_set():
                return
            try:
                self.poll_once()
            except Exception:  # noqa: BLE001 - a bug in one poll must not end the service
                import logging

                logging.getLogger(__name__).exception("live poll failed")

    # -- reading --------------------------------------------------------------------------------

    def candles_since(self, exchange: str, key: str, timeframe: str, seq: int) -> list[Candle]:
        with self.lock:
            return self.buffers[(exchange, key)].since(timeframe, seq)

    def lag_seconds(self, exchange: str, key: str) -> float | None:
        """Seconds from the newest settled minute's close to now (None before the first minute)."""
        buffer = self.buffers[(exchange, key)]
        if buffer.through_ms is None:
            return None
        return round((self.now_ms() - buffer.through_ms) / 1000, 3)


def validate_minutes(raw: pd.DataFrame) -> tuple[pd.DataFrame, list[int]]:
    """Fetched 1m rows (any span) -> (valid rows sorted and unique, open times of quarantined rows),
    validated day by day with the batch rules (dedupe: last fetch wins; the ValidatedCandles schema)."""
    from marketdata_assets.quality import clean_partition

    if raw.empty:
        return raw.reset_index(drop=True), []
    days = raw["timestamp"].dt.date
    valid, quarantined = [], []
    for day in sorted(set(days)):
        cleaned = clean_partition(raw.loc[days == day].reset_index(drop=True), day)
        valid.append(cleaned.valid)
        ms = cleaned.quarantined["timestamp"].to_numpy(dtype="datetime64[ms]").view("int64")
        quarantined += [int(t) for t in ms]
    return pd.concat(valid, ignore_index=True), quarantined


def _iso(ms: int | None) -> str | None:
    return None if ms is None else pd.Timestamp(ms, unit="ms", tz="UTC").isoformat()


def day_of(ms: int) -> date:
    return pd.Timestamp(ms, unit="ms", tz="UTC").date()
