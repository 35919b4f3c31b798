"""The canonical in-memory shapes every layer agrees on.

A candle frame has one row per 1-minute (or coarser) candle:

    timestamp  datetime64[ms, UTC]   the candle's open time
    open, high, low, close, volume   float64

A DVOL frame has the same columns without ``volume``. Raw frames keep rows in the order they
were fetched (duplicates included); later layers sort and dedupe.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
MINUTES_PER_DAY = 1440

TIMESTAMP_DTYPE = "datetime64[ms, UTC]"
PRICE_COLUMNS = ["open", "high", "low", "close"]
CANDLE_COLUMNS = ["timestamp", *PRICE_COLUMNS, "volume"]
DVOL_COLUMNS = ["timestamp", *PRICE_COLUMNS]


def candles_from_rows(rows: Iterable[Sequence[float]]) -> pd.DataFrame:
    """Build a candle frame from ``[open_time_ms, open, high, low, close, volume]`` rows (ccxt's shape)."""
    return _frame(rows, CANDLE_COLUMNS)


def candles_from_parsed_rows(rows: Sequence[Sequence[float]]) -> pd.DataFrame:
    """:func:`candles_from_rows` for rows of exactly ``[int open_time_ms, float x 5]`` (what a
    venue source stores): the same frame, built column by column with NumPy instead of through a
    row-wise DataFrame (a day: 3.4 -> 1.0 ms)."""
    n = len(rows)
    stamps = pd.Series(np.fromiter((r[0] for r in rows), dtype=np.int64, count=n))
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime(stamps, unit="ms", utc=True).astype(TIMESTAMP_DTYPE),
            **{
                column: np.fromiter((r[i] for r in rows), dtype=np.float64, count=n)
                for i, column in enumerate(CANDLE_COLUMNS[1:], start=1)
            },
        }
    )


def dvol_from_rows(rows: Iterable[Sequence[float]]) -> pd.DataFrame:
    """Build a DVOL frame from ``[timestamp_ms, open, high, low, close]`` rows (Deribit's shape)."""
    return _frame(rows, DVOL_COLUMNS)


def _frame(rows: Iterable[Sequence[float]], columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame([list(r)[: len(columns)] for r in rows], columns=columns)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"].astype("int64"), unit="ms", utc=True).astype(
        TIMESTAMP_DTYPE
    )
    for column in columns[1:]:
        frame[column] = frame[column].astype("float64")
    return frame.reset_index(drop=True)


def day_bounds_ms(day: date) -> tuple[int, int]:
    """``[start, end)`` of a UTC day in epoch milliseconds."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return int(start.timestamp() * 1000), int((start + timedelta(days=1)).timestamp() * 1000)


def symbol_key(symbol: str) -> str:
    """Partition/file key of a unified symbol: ``BTC/USDT`` -> ``BTCUSDT`` (no ``/ , | [ ]``)."""
    return symbol.replace("/", "").upper()
