"""New-candle events: an in-process bus (for Server-Sent Events) and a Redis Streams publisher.

A series is ``<exchange>:<SYMBOLKEY>:<timeframe>`` (``binance:BTCUSDT:5m``). Each closed candle of a
series is one event carrying its ``seq`` (the bin index since the epoch, :func:`.buffers.seq_of`).

* :class:`EventBus` -- in-process fan-out to asyncio queues (one per SSE connection), thread-safe: the
  poller publishes from a worker thread, subscribers live on the server's event loop.
* :class:`RedisStreamPublisher` -- one stream per series, ``<prefix><series>``, capped with
  ``MAXLEN ~ maxlen``. The entry ID is ``<open time ms>-0``, so Redis itself refuses a candle twice
  (a restart or a retry never duplicates). It publishes from the buffer, not from the events: each
  call sends every buffered candle newer than the stream's last entry, so candles closed while Redis
  (or the service) was down are published, in order, when it is back.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from marketdata_assets.live.buffers import Candle


@dataclass(frozen=True)
class CandleEvent:
    exchange: str
    symbol: str  # symbol key, BTCUSDT
    candle: Candle

    @property
    def timeframe(self) -> str:
        return self.candle.timeframe

    @property
    def series(self) -> str:
        return series_name(self.exchange, self.symbol, self.candle.timeframe)

    @property
    def seq(self) -> int:
        return self.candle.seq

    def as_json(self) -> dict[str, Any]:
        return {
            "series": self.series,
            "exchange": self.exchange,
            "symbol": self.symbol,
            "timeframe": self.timeframe,
            "seq": self.seq,
            "candle": self.candle.as_json(),
        }


def series_name(exchange: str, symbol: str, timeframe: str) -> str:
    return f"{exchange}:{symbol}:{timeframe}"


class EventBus:
    """Fan-out of event batches to subscribers' asyncio queues (each batch: the events of one poll)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue[list[CandleEvent]]]] = []
        self.published = 0

    def subscribe(self) -> asyncio.Queue[list[CandleEvent]]:
        """A queue of event batches; call from the event loop that will read it."""
        queue: asyncio.Queue[list[CandleEvent]] = asyncio.Queue()
        with self._lock:
            self._subscribers.append((asyncio.get_running_loop(), queue))
        return queue

    def unsubscribe(self, queue: asyncio.Queue[list[CandleEvent]]) -> None:
        with self._lock:
            self._subscribers = [(lp, q) for lp, q in self._subscribers if q is not queue]

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def publish(self, events: list[CandleEvent]) -> None:
        if not events:
            return
        with self._lock:
            self.published += len(events)
            targets = list(self._subscribers)
        for loop, queue in targets:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, list(events))
            except RuntimeError:  # the loop is closed: the subscriber is gone
                self.unsubscribe(queue)


class RedisStreamPublisher:
    """Candles of each series to a capped Redis stream, exactly once and in order."""

    def __init__(self, url: str, prefix: str = "marketdata:", maxlen: int = 10_000) -> None:
        import redis

        self.url = url
        self.prefix = prefix
        self.maxlen = maxlen
        self._redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._last: dict[str, int] = {}  # stream key -> open ms of its newest entry
        self.published = 0
        self.last_error: str | None = None

    def key(self, series: str) -> str:
        return f"{self.prefix}{series}"

    def ping(self) -> None:
        self._redis.ping()

    def last_open_ms(self, series: str) -> int | None:
        """Open time (ms) of the newest candle in the stream of ``series``, or None when empty."""
        key = self.key(series)
        if key not in self._last:
            entries = self._redis.xrevrange(key, count=1)
            if not entries:
                return None
            self._last[key] = int(_text(entries[0][0]).split("-")[0])
        return self._last[key]

    def sync(self, series: str, candles: Iterable[Candle]) -> int:
        """Append every candle newer than the stream's newest entry; returns how many were added."""
        last = self.last_open_ms(series)
        fresh = [c for c in candles if last is None or c.timestamp > last]
        if not fresh:
            return 0
        key = self.key(series)
        pipe = self._redis.pipeline(transaction=False)
        for candle in fresh:
            fields = {"seq": str(candle.seq), "candle": json.dumps(candle.as_json())}
            pipe.xadd(key, fields, id=f"{candle.timestamp}-0", maxlen=self.maxlen, approximate=True)
        pipe.execute()
        self._last[key] = fresh[-1].timestamp
        self.published += len(fresh)
        return len(fresh)

    def read(self, series: str) -> list[dict[str, Any]]:
        """Every entry of the stream of ``series`` (oldest first), decoded: for tests and tools."""
        out = []
        for entry_id, fields in self._redis.xrange(self.key(series)):
            decoded = {_text(k): _text(v) for k, v in fields.items()}
            out.append({"id": _text(entry_id), "seq": int(decoded["seq"]), **json.loads(decoded["candle"])})
        return out

    def delete_prefix(self) -> int:
        """Delete every stream under this publisher's prefix (tests clean up with it)."""
        keys = list(self._redis.scan_iter(match=f"{self.prefix}*"))
        self._last.clear()
        return int(self._redis.delete(*keys)) if keys else 0

    def close(self) -> None:
        self._redis.close()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
