"""Reference data: one Parquet file per venue with the instruments it lists, replaced on each refresh.

Layout (Hive-style; readable without this package)::

    reference/instruments/exchange=binance/data.parquet
        symbol, symbol_key, venue_id, base, quote, tick_size, amount_step, min_amount, min_notional,
        status, raw_status, listed_at, fetched_at

As in the rest of the store, the partition column (``exchange``) lives only in the directory name;
:func:`read_instruments` puts it back. A refresh replaces the venue's file atomically (temp file, then
rename), rows sorted by symbol, so writing the same instruments twice gives a byte-identical file.
The frame's columns and dtypes are those of :mod:`marketdata_assets.venues.instruments`.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs

from marketdata_assets.storage.atomic import (
    WriteInfo,
    frame_from_table,
    read_table,
    table_from_frame,
    write_table_atomic,
)
from marketdata_assets.storage.root import DATA_FILE, StorageRoot, dataset_segments, hive_segment
from marketdata_assets.storage.schemas import UTC_MS

INSTRUMENTS_DATASET = "reference/instruments"
INSTRUMENTS_SCHEMA = pa.schema(
    [
        pa.field("symbol", pa.string()),
        pa.field("symbol_key", pa.string()),
        pa.field("venue_id", pa.string()),
        pa.field("base", pa.string()),
        pa.field("quote", pa.string()),
        pa.field("tick_size", pa.float64()),
        pa.field("amount_step", pa.float64()),
        pa.field("min_amount", pa.float64()),
        pa.field("min_notional", pa.float64()),
        pa.field("status", pa.string()),
        pa.field("raw_status", pa.string()),
        pa.field("listed_at", UTC_MS),
        pa.field("fetched_at", UTC_MS),
    ]
)
FRAME_COLUMNS = ["exchange", *INSTRUMENTS_SCHEMA.names]
_STRINGS = [f.name for f in INSTRUMENTS_SCHEMA if pa.types.is_string(f.type)]


def instruments_path(root: StorageRoot, exchange: str) -> str:
    """``reference/instruments/exchange=<exchange>/data.parquet`` under ``root`` (validated)."""
    return root.path(*dataset_segments(INSTRUMENTS_DATASET), hive_segment("exchange", exchange), DATA_FILE)


def write_instruments(root: StorageRoot, exchange: str, frame: pd.DataFrame) -> WriteInfo:
    """Store one venue's instruments, replacing its previous file atomically.

    ``frame`` may carry an ``exchange`` column (it must then equal ``exchange`` on every row); it is
    not stored in the file. Rows are sorted by symbol; a symbol may appear once.
    """
    path = instruments_path(root, exchange)
    what = f"{INSTRUMENTS_DATASET} exchange={exchange}"
    body = frame
    if "exchange" in frame.columns:
        others = sorted({str(v) for v in frame["exchange"].dropna().unique()} - {exchange})
        if others or frame["exchange"].isna().any():
            raise ValueError(f"{what}: rows of other exchanges in the frame: {others or ['<null>']}")
        body = frame.drop(columns=["exchange"])
    duplicated = sorted(set(body.loc[body["symbol"].duplicated(), "symbol"])) if "symbol" in body else []
    if duplicated:
        raise ValueError(f"{what}: symbols listed twice: {', '.join(map(str, duplicated))}")
    if "symbol" in body:
        body = body.sort_values("symbol", kind="stable").reset_index(drop=True)
    body = body.copy()
    for column in _STRINGS:
        if column in body:
            body[column] = body[column].astype(object).where(body[column].notna(), None)
    table = table_from_frame(body, INSTRUMENTS_SCHEMA, what=what)
    size = write_table_atomic(root.fs, path, table)
    return WriteInfo(path=root.display(path), rows=table.num_rows, bytes=size)


def instrument_exchanges(root: StorageRoot) -> list[str]:
    """Exchanges with a stored instruments file, sorted."""
    directory = root.path(*dataset_segments(INSTRUMENTS_DATASET))
    selector = pafs.FileSelector(directory, allow_not_found=True, recursive=False)
    found = []
    for info in root.fs.get_file_info(selector):
        name = info.base_name
        if info.type == pafs.FileType.Directory and name.startswith("exchange="):
            exchange = name.removeprefix("exchange=")
            try:
                if root.exists(instruments_path(root, exchange)):
                    found.append(exchange)
            except ValueError:  # a directory name that is not a valid exchange: not ours
                continue
    return sorted(found)


def read_instruments(root: StorageRoot, exchange: str | None = None) -> pd.DataFrame:
    """The stored instruments of one exchange (or of all, ``exchange=None``), with ``exchange`` first.

    :class:`FileNotFoundError` when ``exchange`` has no file.
    """
    exchanges = instrument_exchanges(root) if exchange is None else [exchange]
    frames = []
    for name in exchanges:
        path = instruments_path(root, name)
        if not root.exists(path):
            raise FileNotFoundError(f"no instruments stored for exchange {name!r} ({root.display(path)})")
        frame = frame_from_table(read_table(root.fs, path, INSTRUMENTS_SCHEMA))
        frame.insert(0, "exchange", name)
        frames.append(frame)
    if not frames:
        empty = frame_from_table(INSTRUMENTS_SCHEMA.empty_table())
        empty.insert(0, "exchange", pd.Series([], dtype=object))
        frames.append(empty)
    out = pd.concat(frames, ignore_index=True)
    for column in ["exchange", *_STRINGS]:
        out[column] = out[column].astype("string")
    return out[FRAME_COLUMNS]
