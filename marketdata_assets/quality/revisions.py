"""Revisions: a re-fetch of a stored day that returns different values for closed candles.

Venues occasionally revise history (Binance re-uploads archive days). When a day is fetched again,
:func:`merge_refetch` compares the new fetch with what is stored:

* a candle present in both with different values is **revised**: the new values win, but only when
  the new candle is valid (``ValidatedCandles`` for the day: finite, prices > 0, volume >= 0, high/low
  around open/close, minute-aligned, inside the day);
* a candle only in the new fetch is **added** (again only a valid one);
* a re-fetched candle that fails validation is **rejected**: it never replaces or joins the stored day
  (a worse answer must not delete a good candle, nor block a served day); the stored candle, valid or
  not, is kept, and the rejected row is returned with its reason so the caller can quarantine it. A
  rejection is not a revision;
* a candle stored but absent from the new fetch is **kept** - a re-fetch that lost candles (a venue
  hiccup, an outage) must never delete data we already hold; it is counted as ``missing_in_refetch``.

The result holds the rows to store, the rejected rows and a :class:`Revision` summary (how many
candles, the largest price change) that goes into the materialisation metadata and the revisions table.
The price change is measured over revised candles whose old and new prices are all finite; a revision
that heals a stored invalid candle (NaN before) is counted but has no measurable size, so when no
revised candle is measurable the maxima are NaN, never 0.0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from marketdata_assets.frames import PRICE_COLUMNS
from marketdata_assets.quality.clean import REASON_COLUMN, clean_partition
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
    rejected: int = 0  # re-fetched candles that failed validation: not stored, not revisions

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
    frame: pd.DataFrame  # what to store: the valid re-fetched rows (as fetched) + stored candles for the rest
    revision: Revision
    # re-fetched rows that failed validation (after dedupe), with a ``reason``; not in ``frame``
    rejected: pd.DataFrame = field(default_factory=pd.DataFrame)


REJECTED_KEPT = "re-fetch rejected, stored candle kept"
REJECTED_NEW = "re-fetch rejected, no stored candle"


def merge_refetch(
    stored: pd.DataFrame, fetched: pd.DataFrame, *, day: date | None = None, examples: int = 10
) -> MergedDay:
    """Compare a re-fetched day with the stored one; valid new values win, nothing stored is lost.

    ``day`` is the UTC day of the partition (inferred from the candles when omitted); a re-fetched row
    must be a valid candle of that day to replace or join the stored ones.
    """
    day = day if day is not None else _day_of(stored, fetched)
    old = dedupe_candles(stored).frame.set_index("timestamp")
    checked = clean_partition(fetched, day)  # dedupe (last fetch wins), sort, one validation
    new = checked.valid.set_index("timestamp")
    fetched_ts = pd.Index(checked.dedupe.frame["timestamp"])
    common = old.index.intersection(new.index)
    old_common = old.loc[common, VALUE_COLUMNS]
    new_common = new.loc[common, VALUE_COLUMNS]
    differs = ~((old_common == new_common) | (old_common.isna() & new_common.isna()))
    revised_mask = differs.any(axis=1).to_numpy()
    revised_ts = common[revised_mask]

    old_prices = old_common.loc[revised_mask, PRICE_COLUMNS].to_numpy(dtype="float64")
    new_prices = new_common.loc[revised_mask, PRICE_COLUMNS].to_numpy(dtype="float64")
    if len(revised_ts):
        # only candles whose old and new prices are all finite have a measurable change
        measurable = np.isfinite(old_prices).all(axis=1) & np.isfinite(new_prices).all(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            abs_change = np.abs(new_prices[measurable] - old_prices[measurable])
            rel_change = abs_change / np.abs(old_prices[measurable])
        max_abs = float(abs_change.max()) if abs_change.size else float("nan")
        max_rel = float(rel_change.max()) if rel_change.size else float("nan")
    else:
        max_abs = max_rel = 0.0

    missing = old.index.difference(fetched_ts)
    accepted = fetched["timestamp"].isin(new.index)
    kept = stored.loc[~stored["timestamp"].isin(new.index)]
    kept = kept.loc[~kept["timestamp"].duplicated(keep="last")]
    frame = pd.concat([fetched.loc[accepted], kept], ignore_index=True)

    rejected = checked.quarantined.copy()
    if len(rejected):
        prefix = np.where(rejected["timestamp"].isin(old.index), REJECTED_KEPT, REJECTED_NEW)
        rejected[REASON_COLUMN] = pd.Series(prefix, index=rejected.index) + ": " + rejected[REASON_COLUMN]

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
        rejected=int(len(rejected)),
    )
    return MergedDay(frame=frame, revision=revision, rejected=rejected)


def _day_of(stored: pd.DataFrame, fetched: pd.DataFrame) -> date:
    for frame in (stored, fetched):
        if len(frame):
            return pd.Timestamp(frame["timestamp"].min()).tz_convert("UTC").date()
    return date(1970, 1, 1)
