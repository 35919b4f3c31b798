"""Gap accounting for one cleaned UTC day of 1m candles: where is no trade, and why.

Kinds of gap (``kind`` column of the gap table):

* ``no_trades`` - a run of minutes the venue omitted because nothing traded (OKX/Bybit-style sources
  skip such minutes): a missing run while the venue's other symbols traded, or shorter than
  ``outage_min_minutes``.
* ``filler`` - a run of Binance zero-volume filler rows (``open == high == low == close`` and
  ``volume == 0``; Binance prints the previous close). Present in the data, but no real trade.
* ``outage`` - a stretch in which the venue served nothing: a missing run of ``outage_min_minutes`` or
  more during which none of the venue's other symbols has a candle either (``venue_active``), anywhere
  in the day, including its leading and trailing runs. Without other symbols to corroborate (a venue
  with one symbol, or their days not fetched) the length alone decides. An empty day of a venue that
  served nothing is a single 1440-minute outage.
* ``quarantined`` - minutes the venue did send, but whose rows failed validation and were quarantined
  (given as ``quarantined=`` timestamps); they are missing from the validated data for that reason.

Every range is **end-exclusive**: ``[start, end)`` with ``end = start + minutes``, like the day's own
bounds (a gap ending at the day's end has ``end`` = next day 00:00).
"""

from __future__ import annotations

from datetime import date
from typing import NamedTuple

import numpy as np
import pandas as pd

from marketdata_assets.frames import MINUTE_MS, MINUTES_PER_DAY, TIMESTAMP_DTYPE, day_bounds_ms

NO_TRADES = "no_trades"
FILLER = "filler"
OUTAGE = "outage"
QUARANTINED = "quarantined"
GAP_KINDS = (NO_TRADES, FILLER, OUTAGE, QUARANTINED)

NO_TRADES_MAX_MINUTES = 5
DEFAULT_OUTAGE_MIN_MINUTES = NO_TRADES_MAX_MINUTES + 1
GAP_COLUMNS = ["venue", "symbol", "start", "end", "minutes", "kind"]


class Completeness(NamedTuple):
    """Distinct minutes of the day present (filler rows count as present), expected, missing."""

    present: int
    expected: int
    missing: int


def filler_mask(df: pd.DataFrame) -> np.ndarray:
    """Rows that are zero-volume fillers (``volume == 0`` and ``open == high == low == close``)."""
    o, h, lo, c = (df[col].to_numpy(dtype="float64") for col in ("open", "high", "low", "close"))
    return (df["volume"].to_numpy(dtype="float64") == 0) & (o == h) & (h == lo) & (lo == c)


def completeness(df: pd.DataFrame, day: date) -> Completeness:
    present = int(_presence(df, day).sum())
    return Completeness(present, MINUTES_PER_DAY, MINUTES_PER_DAY - present)


def missing_minute_ranges(df: pd.DataFrame, day: date) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """``[start, end)`` of every run of minutes of ``day`` without a row, in time order."""
    starts, lengths = _runs(~_presence(df, day))
    day_start = day_bounds_ms(day)[0]
    return [(_ts(day_start, s), _ts(day_start, s + n)) for s, n in zip(starts, lengths, strict=True)]


def find_gaps(
    df: pd.DataFrame,
    day: date,
    venue: str,
    symbol: str,
    *,
    outage_min_minutes: int = DEFAULT_OUTAGE_MIN_MINUTES,
    quarantined: pd.Series | None = None,
    venue_active: np.ndarray | None = None,
) -> pd.DataFrame:
    """The gap-table rows of one day (columns :data:`GAP_COLUMNS`), sorted by ``start``.

    ``df`` is a cleaned day (unique, minute-aligned timestamps); rows outside the day are ignored.
    ``quarantined``: timestamps of the day's quarantined rows; missing minutes among them are gaps of
    kind ``quarantined`` (and do not count towards the length of a no_trades / outage run).
    ``venue_active``: per minute of the day, whether another symbol of the venue has a candle then
    (:func:`venue_presence`); a missing minute while the venue was active is ``no_trades``, never
    ``outage``. None: no corroboration, the run's length alone decides.
    """
    if outage_min_minutes < 1:
        raise ValueError(f"outage_min_minutes must be >= 1, got {outage_min_minutes}")
    present = _presence(df, day)
    bad = np.zeros(MINUTES_PER_DAY, dtype=bool)
    if quarantined is not None and len(quarantined):
        bad = _presence(pd.DataFrame({"timestamp": quarantined}).dropna(), day) & ~present
    missing = ~present & ~bad
    if venue_active is None:
        missing_starts, missing_lengths = _runs(missing)
        missing_kinds = np.where(missing_lengths >= outage_min_minutes, OUTAGE, NO_TRADES)
    else:
        if venue_active.shape != (MINUTES_PER_DAY,):
            raise ValueError(f"venue_active must hold {MINUTES_PER_DAY} minutes, got {venue_active.shape}")
        silent_starts, silent_lengths = _runs(missing & ~venue_active)
        quiet_starts, quiet_lengths = _runs(missing & venue_active)
        missing_starts = np.concatenate([silent_starts, quiet_starts])
        missing_lengths = np.concatenate([silent_lengths, quiet_lengths])
        missing_kinds = np.concatenate(
            [
                np.where(silent_lengths >= outage_min_minutes, OUTAGE, NO_TRADES),
                np.full(len(quiet_starts), NO_TRADES),
            ]
        )
    bad_starts, bad_lengths = _runs(bad)

    fillers = np.zeros(MINUTES_PER_DAY, dtype=bool)
    minutes, inside = _minute_of_day(df, day)
    fillers[minutes[inside & filler_mask(df)]] = True
    filler_starts, filler_lengths = _runs(fillers)

    starts = np.concatenate([missing_starts, filler_starts, bad_starts])
    lengths = np.concatenate([missing_lengths, filler_lengths, bad_lengths])
    kinds = np.concatenate(
        [missing_kinds, np.full(len(filler_starts), FILLER), np.full(len(bad_starts), QUARANTINED)]
    ).astype(object)
    order = np.argsort(starts, kind="stable")
    starts, lengths, kinds = starts[order], lengths[order], kinds[order]

    day_start = day_bounds_ms(day)[0]
    return pd.DataFrame(
        {
            "venue": pd.Series([venue] * len(starts), dtype="object"),
            "symbol": pd.Series([symbol] * len(starts), dtype="object"),
            "start": _timestamps(day_start + starts * MINUTE_MS),
            "end": _timestamps(day_start + (starts + lengths) * MINUTE_MS),
            "minutes": lengths.astype("int64"),
            "kind": pd.Series(kinds, dtype="object"),
        },
        columns=GAP_COLUMNS,
    )


def venue_presence(frames: list[pd.DataFrame], day: date) -> np.ndarray | None:
    """Minutes of ``day`` in which any of ``frames`` (the venue's other symbols) has a candle (filler
    rows included: the venue was serving); None when there is no frame to corroborate with."""
    if not frames:
        return None
    active = np.zeros(MINUTES_PER_DAY, dtype=bool)
    for frame in frames:
        active |= _presence(frame, day)
    return active


def _minute_of_day(df: pd.DataFrame, day: date) -> tuple[np.ndarray, np.ndarray]:
    """Minute index of every row within the day, and which rows fall inside the day."""
    ms = df["timestamp"].to_numpy(dtype="datetime64[ms]").view("int64")
    minutes = (ms - day_bounds_ms(day)[0]) // MINUTE_MS
    inside = (minutes >= 0) & (minutes < MINUTES_PER_DAY)
    return minutes, inside


def _presence(df: pd.DataFrame, day: date) -> np.ndarray:
    present = np.zeros(MINUTES_PER_DAY, dtype=bool)
    minutes, inside = _minute_of_day(df, day)
    present[minutes[inside]] = True
    return present


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start positions and lengths of the runs of True in ``mask``."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    return starts.astype("int64"), (ends - starts).astype("int64")


def _ts(day_start_ms: int, minute: int) -> pd.Timestamp:
    return pd.Timestamp(day_start_ms + int(minute) * MINUTE_MS, unit="ms", tz="UTC")


def _timestamps(ms: np.ndarray) -> pd.Series:
    return pd.Series(pd.to_datetime(ms.astype("int64"), unit="ms", utc=True)).astype(TIMESTAMP_DTYPE)
