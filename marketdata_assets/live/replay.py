"""Replay served history as the live service's new-candle events (``marketdata replay``).

The candles come from :class:`~marketdata_assets.client.MarketDataClient`; each becomes the same
:class:`~.events.CandleEvent` the live path publishes (series name, ``seq``, payload), in the live
order (by close time, then timeframe ascending), and goes to the same Redis stream through
:class:`~.events.RedisStreamPublisher` (entry ID = open ms, so a replay never duplicates an entry).
``speed``: 60 = 60x real time between close times, 0 = as fast as possible.

The live service serves the same events over Server-Sent Events at ``GET /api/v1/replay`` (see
:mod:`.api`), in the live stream's message format, from :func:`series_events` and :func:`batches`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import groupby
from typing import Any

from marketdata_assets.live.buffers import LIVE_TIMEFRAMES, bin_ms, candles_of
from marketdata_assets.live.events import CandleEvent, RedisStreamPublisher


def replay_events(
    client: Any, exchange: str, symbol: str, start: Any, end: Any, timeframes: Sequence[str] = LIVE_TIMEFRAMES
) -> list[CandleEvent]:
    """Every served candle of ``[start, end)`` of each timeframe as an event, in the live order."""
    key = symbol.replace("/", "").replace("-", "").upper()
    return series_events(client, [(exchange, key, tf) for tf in timeframes], start, end)


def series_events(
    client: Any, series: Sequence[tuple[str, str, str]], start: Any, end: Any
) -> list[CandleEvent]:
    """Every served candle of ``[start, end)`` of each ``(exchange, SYMBOLKEY, timeframe)`` as an event,
    in the live order: by close time, then timeframe ascending (then as listed)."""
    events = []
    for exchange, key, timeframe in series:
        frame = client.get_historical_data(key, exchange, timeframe, start, end).reset_index()
        events += [CandleEvent(exchange, key, candle) for candle in candles_of(frame, timeframe)]
    return live_order(events)


def live_order(events: Iterable[CandleEvent]) -> list[CandleEvent]:
    """By close time, then timeframe ascending; ties (several symbols) keep their order (stable sort)."""
    return sorted(events, key=lambda e: (e.candle.close_time, bin_ms(e.timeframe)))


def batches(events: Iterable[CandleEvent]) -> Iterator[tuple[int, list[CandleEvent]]]:
    """``(close time ms, events closing then)``: what one poll of the live path publishes together."""
    for close_time, group in groupby(events, key=lambda e: e.candle.close_time):
        yield close_time, list(group)


def pause_s(previous: int | None, close_time: int, speed: float) -> float:
    """Seconds to wait before the batch closing at ``close_time``, ``speed`` x real time."""
    if speed <= 0 or previous is None:
        return 0.0
    return (close_time - previous) / 1000 / speed


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
    for close_time, batch in batches(events):
        if speed > 0 and previous is not None:
            sleep(pause_s(previous, close_time, speed))
        previous = close_time
        if redis is not None:
            for event in batch:
                redis.sync(event.series, [event.candle])
        if publish is not None:
            publish(batch)
        sent += len(batch)
    return sent
