"""DVOL on a minute grid (forward-filled, marked) and DVOL hourly candles.

Deribit serves DVOL at a chosen resolution (1 s, 60 s, 1 h, 12 h, 1 d). :func:`dvol_to_minutes` puts
any of them on the 1m grid without inventing data outside the range DVOL covers: the grid runs from the
first observation's minute up to (excluding) the last observation + one resolution step, rounded up to
the minute. Minutes without an observation carry the latest observation's values, ``filled=True``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from marketdata_assets.frames import DVOL_COLUMNS, HOUR_MS, MINUTE_MS, PRICE_COLUMNS, TIMESTAMP_DTYPE
from marketdata_assets.transform.resample import timestamps_ms

FILLED_COLUMN = "filled"
DVOL_MINUTE_COLUMNS = [*DVOL_COLUMNS, FILLED_COLUMN]


def dvol_to_minutes(dvol_df: pd.DataFrame, *, resolution_s: int) -> pd.DataFrame:
    """DVOL on every minute of its covered range; columns :data:`DVOL_MINUTE_COLUMNS`.

    Several observations inside one minute (1 s resolution) aggregate to that minute (open first,
    high max, low min, close last) and count as observed. Timestamps must be unique.
    """
    if resolution_s <= 0:
        raise ValueError(f"resolution_s must be positive, got {resolution_s}")
    ms, prices = _sorted_unique(dvol_df)
    if len(ms) == 0:
        empty = pd.DataFrame({c: pd.Series(dtype="float64") for c in DVOL_MINUTE_COLUMNS})
        return empty.astype({"timestamp": TIMESTAMP_DTYPE, FILLED_COLUMN: "bool"})

    observed_minutes, minute_prices = _ohlc_per_bin(ms, prices, MINUTE_MS)
    end = -(-(int(ms[-1]) + resolution_s * 1000) // MINUTE_MS) * MINUTE_MS  # ceil to the minute
    grid = np.arange(observed_minutes[0], end, MINUTE_MS, dtype="int64")
    source = np.searchsorted(observed_minutes, grid, side="right") - 1
    frame = pd.DataFrame({"timestamp": _timestamps(grid)})
    for column in PRICE_COLUMNS:
        frame[column] = minute_prices[column][source]
    frame[FILLED_COLUMN] = observed_minutes[source] != grid
    return frame


def dvol_hourly(dvol_df: pd.DataFrame) -> pd.DataFrame:
    """Hourly DVOL candles (open first, high max, low min, close last), columns ``DVOL_COLUMNS``.

    Takes observed minutes (or seconds) and aggregates them; hourly input passes through unchanged
    (coarser input keeps its own rows). Rows with ``filled=True`` (from :func:`dvol_to_minutes`) are
    not observations and are left out.
    """
    frame = dvol_df
    if FILLED_COLUMN in frame.columns:
        frame = frame.loc[~frame[FILLED_COLUMN].to_numpy(dtype=bool)]
    ms, prices = _sorted_unique(frame)
    hours, hourly = _ohlc_per_bin(ms, prices, HOUR_MS)
    out = pd.DataFrame({"timestamp": _timestamps(hours)})
    for column in PRICE_COLUMNS:
        out[column] = hourly[column]
    return out


def _sorted_unique(df: pd.DataFrame) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    frame = df if df["timestamp"].is_monotonic_increasing else df.sort_values("timestamp", kind="stable")
    ms = timestamps_ms(frame["timestamp"])
    if len(ms) > 1 and not bool(np.all(ms[1:] > ms[:-1])):
        raise ValueError("DVOL frame has duplicate timestamps: dedupe it first")
    return ms, {c: frame[c].to_numpy(dtype="float64") for c in PRICE_COLUMNS}


def _ohlc_per_bin(
    ms: np.ndarray, prices: dict[str, np.ndarray], step_ms: int
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Aggregate sorted observations into epoch-aligned bins of ``step_ms`` (only bins with data)."""
    if len(ms) == 0:
        return ms.astype("int64"), {c: np.empty(0, dtype="float64") for c in PRICE_COLUMNS}
    bins = ms // step_ms * step_ms
    starts = np.flatnonzero(np.concatenate(([True], bins[1:] != bins[:-1])))
    ends = np.append(starts[1:], len(bins)) - 1
    return bins[starts], {
        "open": prices["open"][starts],
        "high": np.maximum.reduceat(prices["high"], starts),
        "low": np.minimum.reduceat(prices["low"], starts),
        "close": prices["close"][ends],
    }


def _timestamps(ms: np.ndarray) -> pd.Series:
    return pd.Series(pd.DatetimeIndex(ms.astype("datetime64[ms]")).tz_localize("UTC"))
