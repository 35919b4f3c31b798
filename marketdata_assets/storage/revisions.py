"""Storing a re-fetched raw day: the new values win, stored candles are never lost, revisions are logged.

The revisions table is one small file per revised day, appended to on every revision found::

    revisions/ohlcv_1m/exchange=binance/symbol=BTCUSDT/date=2024-01-01/data.parquet
        detected_at, revised, added, missing_in_refetch, max_abs_price_change, max_rel_price_change,
        first_revised, last_revised

Query it with DuckDB: ``read_parquet('<root>/revisions/ohlcv_1m/**/data.parquet', hive_partitioning=true)``.

A re-fetched candle that fails validation never replaces a stored one (nor joins the day): it is kept,
with its reason and when it was seen, in its own quarantine, appended to on every re-fetch::

    quarantine/ohlcv_1m_refetch/exchange=binance/symbol=BTCUSDT/date=2024-01-01/data.parquet
        timestamp, open, high, low, close, volume, reason, detected_at

(the validate step owns ``quarantine/ohlcv_1m`` and rewrites it from the raw day; these rows are not in
the raw day, so they live apart and are never rewritten).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pandas as pd
import pyarrow as pa

from marketdata_assets.quality.revisions import Revision, merge_refetch
from marketdata_assets.storage.raw import (
    DayDataset,
    list_days,
    read_day_file,
    read_raw_candles,
    series_lock,
    write_day_file,
    write_raw_candles,
)
from marketdata_assets.storage.root import StorageRoot
from marketdata_assets.storage.schemas import QUARANTINE_CANDLES, UTC_MS

REVISIONS_SCHEMA = pa.schema(
    [
        pa.field("detected_at", UTC_MS),
        pa.field("revised", pa.int32()),
        pa.field("added", pa.int32()),
        pa.field("missing_in_refetch", pa.int32()),
        pa.field("max_abs_price_change", pa.float64()),
        pa.field("max_rel_price_change", pa.float64()),
        pa.field("first_revised", UTC_MS),
        pa.field("last_revised", UTC_MS),
    ]
)
REVISIONS = DayDataset("revisions/ohlcv_1m", ("exchange", "symbol"), REVISIONS_SCHEMA, rows_within_day=False)
REFETCH_REJECTIONS_SCHEMA = pa.schema([*QUARANTINE_CANDLES, pa.field("detected_at", UTC_MS)])
REFETCH_REJECTIONS = DayDataset(
    "quarantine/ohlcv_1m_refetch", ("exchange", "symbol"), REFETCH_REJECTIONS_SCHEMA, rows_within_day=False
)


@dataclass(frozen=True)
class RawWrite:
    """Where a raw day went and, when the day was stored before, what the re-fetch changed."""

    path: str
    rows: int
    bytes: int
    revision: Revision | None = None


def store_raw_candles(
    root: StorageRoot,
    exchange: str,
    symbol_key: str,
    day: date,
    fetched: pd.DataFrame,
    *,
    now: pd.Timestamp | None = None,
) -> RawWrite:
    """Write a fetched day; if one is stored already, merge (valid new values win, nothing stored is
    lost), quarantine the re-fetched rows that fail validation and log a revision row when candles were
    revised or added. Under the series lock: two runs storing the same day at once keep both fetches."""
    with series_lock(root, exchange, symbol_key):
        return _store_raw_candles(root, exchange, symbol_key, day, fetched, now=now)


def _store_raw_candles(
    root: StorageRoot,
    exchange: str,
    symbol_key: str,
    day: date,
    fetched: pd.DataFrame,
    *,
    now: pd.Timestamp | None,
) -> RawWrite:
    try:
        stored = read_raw_candles(root, exchange, symbol_key, day)
    except FileNotFoundError:
        info = write_raw_candles(root, exchange, symbol_key, day, fetched)
        return RawWrite(info.path, info.rows, info.bytes)
    merged = merge_refetch(stored, fetched, day=day)
    detected = (now or pd.Timestamp.now(tz="UTC")).floor("ms")
    # the rejected rows first: a crash after them leaves the stored day untouched, never a lost row
    if len(merged.rejected):
        record_refetch_rejections(root, exchange, symbol_key, day, merged.rejected, detected)
    info = write_raw_candles(root, exchange, symbol_key, day, merged.frame)
    if merged.revision.changed:
        record_revision(root, exchange, symbol_key, day, merged.revision.as_row(detected))
    return RawWrite(info.path, info.rows, info.bytes, merged.revision)


def record_refetch_rejections(
    root: StorageRoot,
    exchange: str,
    symbol_key: str,
    day: date,
    rejected: pd.DataFrame,
    detected_at: pd.Timestamp,
) -> None:
    """Append re-fetched rows that failed validation (with their ``reason``) to the day's file."""
    keys = {"exchange": exchange, "symbol": symbol_key}
    new = rejected[QUARANTINE_CANDLES.names].copy()
    new["detected_at"] = pd.Series([detected_at] * len(new), index=new.index).astype("datetime64[ms, UTC]")
    try:
        frame = pd.concat([read_day_file(root, REFETCH_REJECTIONS, keys, day), new], ignore_index=True)
    except FileNotFoundError:
        frame = new.reset_index(drop=True)
    write_day_file(root, REFETCH_REJECTIONS, keys, day, frame)


def read_refetch_rejections(root: StorageRoot, exchange: str, symbol_key: str, day: date) -> pd.DataFrame:
    """The re-fetched rows of one day that were rejected (empty when there were none)."""
    try:
        return read_day_file(root, REFETCH_REJECTIONS, {"exchange": exchange, "symbol": symbol_key}, day)
    except FileNotFoundError:
        return pd.DataFrame(columns=REFETCH_REJECTIONS_SCHEMA.names)


def record_revision(root: StorageRoot, exchange: str, symbol_key: str, day: date, row: dict) -> None:
    keys = {"exchange": exchange, "symbol": symbol_key}
    new = pd.DataFrame([row])
    for column in ("detected_at", "first_revised", "last_revised"):
        new[column] = pd.to_datetime(new[column], utc=True).astype("datetime64[ms, UTC]")
    try:
        frame = pd.concat([read_day_file(root, REVISIONS, keys, day), new], ignore_index=True)
    except FileNotFoundError:
        frame = new
    write_day_file(root, REVISIONS, keys, day, frame)


def read_revisions(root: StorageRoot, exchange: str, symbol_key: str) -> pd.DataFrame:
    """Every revision logged for one series, with a ``day`` column, oldest day first."""
    keys = {"exchange": exchange, "symbol": symbol_key}
    frames = [
        read_day_file(root, REVISIONS, keys, day).assign(day=day) for day in list_days(root, REVISIONS, keys)
    ]
    if not frames:
        return pd.DataFrame(columns=[*REVISIONS_SCHEMA.names, "day"])
    return pd.concat(frames, ignore_index=True)
