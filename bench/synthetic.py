"""Synthetic 1m candles that compress like real ones (a random walk on a tick grid), not a ramp."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

from marketdata_assets.frames import TIMESTAMP_DTYPE


def minutes(
    start: date,
    days: int,
    *,
    seed: int = 7,
    price: float = 40_000.0,
    tick: float = 0.01,
    filler_rate: float = 0.0,
    missing_rate: float = 0.0,
) -> pd.DataFrame:
    """1m candles for ``days`` UTC days from ``start``: canonical columns, ``timestamp[ms, UTC]``.

    ``filler_rate``: fraction of minutes that are Binance-style zero-volume fillers (o = h = l = c =
    the previous close); ``missing_rate``: fraction of minutes absent.
    """
    rng = np.random.default_rng(seed)
    n = days * 1440
    steps = rng.normal(0.0, 0.0008, n)
    close = np.round(price * np.exp(np.cumsum(steps)) / tick) * tick
    open_ = np.round(np.concatenate(([price], close[:-1])) / tick) * tick
    spread = np.abs(rng.normal(0.0, 0.0005, (2, n))) * close
    high = np.round((np.maximum(open_, close) + spread[0]) / tick) * tick
    low = np.round((np.minimum(open_, close) - spread[1]) / tick) * tick
    volume = np.round(rng.lognormal(1.0, 1.0, n), 5)
    filler = rng.random(n) < filler_rate
    prev_close = np.concatenate(([price], close[:-1]))
    for column in (open_, high, low, close):
        column[filler] = prev_close[filler]
    volume[filler] = 0.0
    stamps = pd.Timestamp(start, tz="UTC") + pd.to_timedelta(np.arange(n), unit="min")
    frame = pd.DataFrame(
        {
            "timestamp": pd.Series(stamps).astype(TIMESTAMP_DTYPE),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
        }
    )
    if missing_rate:
        frame = frame[rng.random(n) >= missing_rate].reset_index(drop=True)
    return frame


def by_day(frame: pd.DataFrame) -> dict[date, pd.DataFrame]:
    days = frame["timestamp"].dt.date
    return {day: part.reset_index(drop=True) for day, part in frame.groupby(days, sort=True)}


def day_range(start: date, days: int) -> list[date]:
    return [start + timedelta(days=i) for i in range(days)]
