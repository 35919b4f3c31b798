"""Collapse repeated timestamps of a raw frame: the last row fetched wins.

Raw frames keep rows in fetch order, so "last row" means "most recent fetch": a page-boundary repeat is
an identical copy (collapsed silently, counted), a revised candle is a conflicting copy (counted and
listed with its old and new values so a revision never passes unnoticed).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class DedupeResult:
    """A frame with one row per timestamp, sorted, plus what was collapsed to get there.

    ``identical_duplicates`` / ``conflicting_duplicates`` count dropped rows (not timestamps).
    ``conflicts`` has one row per dropped conflicting row: ``timestamp``, ``old_<col>`` (the dropped,
    earlier-fetched value) and ``new_<col>`` (the kept, last-fetched value) for every value column, and
    ``changed`` (comma-separated names of the columns that differ).
    """

    frame: pd.DataFrame
    identical_duplicates: int
    conflicting_duplicates: int
    conflicts: pd.DataFrame

    @property
    def duplicates(self) -> int:
        return self.identical_duplicates + self.conflicting_duplicates


def dedupe_candles(raw: pd.DataFrame) -> DedupeResult:
    """One row per timestamp (the last fetched), sorted by timestamp, with a ``RangeIndex``.

    Works on any frame with a ``timestamp`` column (candles or DVOL); every other column is a value
    column. NaN equals NaN when telling identical from conflicting copies.
    """
    frame = raw.reset_index(drop=True)
    value_columns = [c for c in frame.columns if c != "timestamp"]
    dropped_mask = frame.duplicated("timestamp", keep="last").to_numpy()
    kept = frame.loc[~dropped_mask]
    result = kept.sort_values("timestamp", kind="stable").reset_index(drop=True)
    if not dropped_mask.any():
        return DedupeResult(result, 0, 0, _empty_conflicts(frame, value_columns))

    dropped = frame.loc[dropped_mask].reset_index(drop=True)
    newest = kept.set_index("timestamp").loc[dropped["timestamp"], value_columns].reset_index(drop=True)
    old = dropped[value_columns]
    differs = ~(old.eq(newest) | (old.isna() & newest.isna()))
    conflicting = differs.any(axis=1).to_numpy()

    conflicts = _conflict_table(dropped.loc[conflicting], newest.loc[conflicting], differs.loc[conflicting])
    return DedupeResult(
        frame=result,
        identical_duplicates=int((~conflicting).sum()),
        conflicting_duplicates=int(conflicting.sum()),
        conflicts=conflicts,
    )


def _conflict_table(old: pd.DataFrame, new: pd.DataFrame, differs: pd.DataFrame) -> pd.DataFrame:
    table = pd.DataFrame({"timestamp": old["timestamp"].to_numpy()}, index=old.index)
    table["timestamp"] = table["timestamp"].astype(old["timestamp"].dtype)
    for column in differs.columns:
        table[f"old_{column}"] = old[column]
        table[f"new_{column}"] = new[column]
    names = differs.columns.to_numpy()
    table["changed"] = [",".join(names[row]) for row in differs.to_numpy()]
    return table.sort_values("timestamp", kind="stable").reset_index(drop=True)


def _empty_conflicts(frame: pd.DataFrame, value_columns: list[str]) -> pd.DataFrame:
    """The conflicts table with no rows (built in one constructor: column-by-column assignment cost ~15 ms
    per day, the common case)."""
    columns: dict[str, pd.Series] = {"timestamp": frame["timestamp"].iloc[:0].reset_index(drop=True)}
    for column in value_columns:
        empty = frame[column].iloc[:0].reset_index(drop=True)
        columns[f"old_{column}"] = empty
        columns[f"new_{column}"] = empty
    columns["changed"] = pd.Series([], dtype="object")
    return pd.DataFrame(columns)
