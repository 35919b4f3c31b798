"""Price continuity: consecutive closes that jump by more than a relative threshold.

A jump is measured between consecutive rows (whatever the time between them) as
``change = close / prev_close - 1``; a row is reported when ``abs(change) > threshold``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

DEFAULT_JUMP_THRESHOLD = 0.1
JUMP_COLUMNS = ["prev_timestamp", "timestamp", "prev_close", "close", "change"]


def price_jumps(df: pd.DataFrame, threshold: float = DEFAULT_JUMP_THRESHOLD) -> pd.DataFrame:
    """Consecutive closes (in timestamp order) whose relative change exceeds ``threshold``.

    Columns :data:`JUMP_COLUMNS`; ``change`` is signed (``-0.2`` = a 20 % drop).
    """
    if threshold < 0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    frame = df if df["timestamp"].is_monotonic_increasing else df.sort_values("timestamp", kind="stable")
    close = frame["close"].to_numpy(dtype="float64")
    timestamps = frame["timestamp"]
    with np.errstate(divide="ignore", invalid="ignore"):
        change = close[1:] / close[:-1] - 1.0
    jumps = np.flatnonzero(np.abs(change) > threshold)
    return pd.DataFrame(
        {
            "prev_timestamp": timestamps.iloc[jumps].reset_index(drop=True),
            "timestamp": timestamps.iloc[jumps + 1].reset_index(drop=True),
            "prev_close": close[jumps],
            "close": close[jumps + 1],
            "change": change[jumps],
        },
        columns=JUMP_COLUMNS,
    )
