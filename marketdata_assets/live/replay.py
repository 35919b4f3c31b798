"""Replay served history as the live service's new-candle events (``marketdata replay``).

The candles come from :class:`~marketdata_assets.client.MarketDataClient`; each becomes the same
:class:`~.events.CandleEvent` the live path publishes (series name, ``seq``, payload), in the live
order (by close time, then timeframe ascending), and goes to the same Redis stream through
:class:`~.events.RedisStreamPublisher` (entry ID = open ms, so a replay never duplicates an entry).
``speed``: 60 = 60x real time between close times, 0 = as fast as possible.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from itertools import groupby
from typing import Any

from marketdata_assets.live.buffers import LIVE_TIMEFRAMES, bin_ms, candles_of
from marketdata_assets.live.events import CandleEvent, RedisStreamPublisher


def replay_events(
    client: Any, exchange: str, symbol: str, start: Any, end: Any, timeframes: Sequence[str] = LIVE_TIMEFRAMES
) -> list[CandleEvent]:
    """Every served candle of ``[start, end)`` of each timeframe as an event, in the live order."""
    key = symbol.replace("/", "").replace("-", "").upper()
    events = []
    for timeframe in timeframes:
        frame = client.get_historical_data(key, exchange, timeframe, start, end).reset_index()
        events += [CandleEvent(exchange, key, candle) for candle in candles_of(frame, timeframe)]
    events.sort(key=lambda e: (e.candle.close_time, bin_ms(e.timeframe)))
    return events


def replay(
    events: Iterable[CandleEvent],
    *,
    speed: float,
    redis: RedisStreamPublisher | None = None,
    publish: Callable[[list[CandleEvent]], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Publish ``events`` batch by batch (one batch per close time, as one poll would); returns how many.
    ``publish`` receives each batch too (an :class:`~.events.EventBus`'s ``publish``, a test's list)."""
    if speed < 0:
        raise ValueError(f"speed must be >= 0 (0: as fast as possible), not {speed}")
    sent = 0
    previous: int | None = None
    for close_time, group in groupby(events, key=lambda e: e.candle.close_time):
        batch = list(group)
        if speed > 0 and previous is not None:
            sleep((close_time - previous) / 1000 / speed)
        previous = close_time
        if redis is not None:
            for event in batch:
                redis.sync(event.series, [event.candle])
        if publish is not None:
            publish(batch)
        sent += len(batch)
    return sent
