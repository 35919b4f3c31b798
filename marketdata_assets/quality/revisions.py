"""Revisions: a re-fetch of a stored day that returns different values for closed candles.

Venues occasionally revise history (Binance re-uploads archive days). When a day is fetched again,
:func:`merge_refetch` compares the new fetch with what is stored:

* a candle present in both with different values is **revised**: the new values win;
* a candle only in the new fetch is **added**;
* a candle stored but absent from the new fetch is **kept** - a re-fetch that lost candles (a venue
  hiccup, an outage) must never delete data we already hold; it is counted as ``missing_in_refetch``.

The result holds the rows to store and a :class:`Revision` summary (how many candles, the largest price
change) that goes into the materialisation metadata and the revisions table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from marketdata_assets.frames import PRICE_COLUMNS
from marketdata_assets.quality.dedupe import dedupe_candles

VALUE_COLUMNS = [*PRICE_COLUMNS, "volume"]
REVISION_COLUMNS = [
    "detected_at",
    "revised",
    "added",
    "missing_in_refetch",
    "max_abs_price_change",
    "max_rel_price_change",
    "first_revised",
    "last_revised",
]


@dataclass(frozen=True)
class Revision:
    """What a re-fetch changed in a stored day."""

    revised: int
    added: int
    missing_in_refetch: int
    max_abs_price_change: float
    max_rel_price_change: float
    first_revised: pd.Timestamp | None
    last_revised: pd.Timestamp | None
    examples: pd.DataFrame  # timestamp, old_<col>, new_<col> of the first revised candles

    @property
    def changed(self) -> bool:
        return bool(self.revised or self.added)

    def as_row(self, detected_at: pd.Timestamp) -> dict:
        return {
            "detected_at": detected_at,
            "revised": self.revised,
            "added": self.added,
            "missing_in_refetch": self.missing_in_refetch,
            "max_abs_price_change": self.max_abs_price_change,
            "max_rel_price_change": self.max_rel_price_change,
            "first_revised": self.first_revised,
            "last_revised": self.last_revised,
        }


@dataclass(frozen=True)
class MergedDay:
    frame: pd.DataFrame  # what to store: the new fetch (as fetched) + stored candles it lacks
    revision: Revision


def merge_refetch(stored: pd.DataFrame, fetched: pd.DataFrame, *, examples: int = 10) -> MergedDay:
    """Compare a re-fetched day with the stored one; the new values win, nothing stored is lost."""
    old = dedupe_candles(stored).frame.set_index("timestamp")
    new = dedupe_candles(fetched).frame.set_index("timestamp")
    common = old.index.intersection(new.index)
    old_common = old.loc[common, VALUE_COLUMNS]
    new_common = new.loc[common, VALUE_COLUMNS]
    differs = ~((old_common == new_common) | (old_common.isna() & new_common.isna()))
    revised_mask = differs.any(axis=1).to_numpy()
    revised_ts = common[revised_mask]

    old_prices = old_common.loc[revised_mask, PRICE_COLUMNS].to_numpy(dtype="float64")
    new_prices = new_common.loc[revised_mask, PRICE_COLUMNS].to_numpy(dtype="float64")
    if len(revised_ts):
        with np.errstate(divide="ignore", invalid="ignore"):
            abs_change = np.abs(new_prices - old_prices)
            rel_change = abs_change / np.abs(old_prices)
        max_abs = float(np.nanmax(abs_change)) if np.isfinite(abs_change).any() else float("nan")
        max_rel = float(np.nanmax(rel_change)) if np.isfinite(rel_change).any() else float("nan")
    else:
        max_abs = max_rel = 0.0

    missing = old.index.difference(new.index)
    kept = stored.loc[stored["timestamp"].isin(missing)]
    kept = kept.loc[~kept["timestamp"].duplicated(keep="last")]
    frame = pd.concat([fetched, kept], ignore_index=True) if len(kept) else fetched.reset_index(drop=True)

    shown = revised_ts[:examples]
    example = pd.DataFrame({"timestamp": shown})
    for column in VALUE_COLUMNS:
        example[f"old_{column}"] = old.loc[shown, column].to_numpy()
        example[f"new_{column}"] = new.loc[shown, column].to_numpy()
    revision = Revision(
        revised=int(len(revised_ts)),
        added=int(len(new.index.difference(old.index))),
        missing_in_refetch=int(len(missing)),
        max_abs_price_change=max_abs,
        max_rel_price_change=max_rel,
        first_revised=revised_ts[0] if len(revised_ts) else None,
        last_revised=revised_ts[-1] if len(revised_ts) else None,
        examples=example,
    )
    return MergedDay(frame=frame, revision=revision)
