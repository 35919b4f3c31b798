"""Bytes per 1m candle of the served month files under each Parquet writer setting the storage goal
asks about, one change at a time from the previous layout, on the real ADA/BTC days (``bench/data``)
and a synthetic year; every variant is read back and compared bit for bit.

    uv run python -m bench.storage_options

Prints one line per variant: total bytes per candle on both data sets (all month files, footers
included), the share of the timestamp, an average price column and the volume, and the median time
to write one month of synthetic 1m (interleaved, 3 rounds). ``project`` is what
:func:`marketdata_assets.storage.atomic.parquet_options` writes today.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from datetime import date

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bench import synthetic
from bench.scenarios.storage import REAL_FILES, real_candles
from marketdata_assets.storage import atomic, schemas

FLOATS = ["open", "high", "low", "close", "volume"]
COUNTS = ["n_minutes", "expected_minutes", "complete"]
PREVIOUS = {
    "compression": "zstd",
    "compression_level": 3,
    "row_group_size": 10_080,
    "write_statistics": True,
    "store_schema": True,
    "version": "2.6",
    "data_page_version": "1.0",
}
PLAIN_FLOATS = {"use_dictionary": ["timestamp", *COUNTS], "column_encoding": dict.fromkeys(FLOATS, "PLAIN")}
DELTA_TS = {
    "use_dictionary": COUNTS,
    "column_encoding": {"timestamp": "DELTA_BINARY_PACKED", **dict.fromkeys(FLOATS, "PLAIN")},
}
BSS = {
    "use_dictionary": COUNTS,
    "column_encoding": {"timestamp": "DELTA_BINARY_PACKED", **dict.fromkeys(FLOATS, "BYTE_STREAM_SPLIT")},
}
BSS_VOLUME = {
    "use_dictionary": COUNTS,
    "column_encoding": {
        "timestamp": "DELTA_BINARY_PACKED",
        **dict.fromkeys(FLOATS[:4], "PLAIN"),
        "volume": "BYTE_STREAM_SPLIT",
    },
}
LEAN = {"write_statistics": ["timestamp", *COUNTS], "store_schema": False}

Options = Callable[[pa.Schema], dict[str, object]]


def variants() -> dict[str, Options]:
    def fixed(**changes: object) -> Options:
        return lambda _schema: {**PREVIOUS, **changes}

    return {
        "previous layout (dictionary everywhere, zstd 3)": fixed(),
        "+ floats PLAIN, no dictionary": fixed(**PLAIN_FLOATS),
        "+ timestamp DELTA_BINARY_PACKED": fixed(**DELTA_TS),
        "  (floats BYTE_STREAM_SPLIT instead of PLAIN)": fixed(**BSS),
        "  (volume BYTE_STREAM_SPLIT only)": fixed(**BSS_VOLUME),
        "+ no float statistics, no ARROW:schema": fixed(**DELTA_TS, **LEAN),
        "  (row groups of 44,640 rows = 1 month)": fixed(**DELTA_TS, **LEAN, row_group_size=44_640),
        "  (zstd 9)": fixed(**DELTA_TS, **LEAN, compression_level=9),
        "  (zstd 19)": fixed(**DELTA_TS, **LEAN, compression_level=19),
        "  (without the 3 completeness columns)": fixed(**DELTA_TS, **LEAN),
        "project (the above + zstd 6)": atomic.parquet_options,
    }


def served_table(frame: pd.DataFrame, completeness: bool = True) -> pa.Table:
    full = frame.assign(n_minutes=1, expected_minutes=1, complete=True)
    table = pa.Table.from_pandas(full, schema=schemas.SERVED_CANDLES, preserve_index=False)
    table = table.replace_schema_metadata(None)
    return table if completeness else table.drop_columns(COUNTS)


def month_tables(table: pa.Table) -> list[pa.Table]:
    months = pd.DatetimeIndex(table.column("timestamp").to_numpy()).strftime("%Y-%m")
    return [table.filter(pa.array(months == m)) for m in sorted(set(months))]


def write(table: pa.Table, options: Options) -> pa.Buffer:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **options(table.schema))
    return sink.getvalue()


def measure(table: pa.Table, options: Options) -> dict[str, float]:
    total = 0
    columns: dict[str, int] = {}
    for month in month_tables(table):
        payload = write(month, options)
        back = pq.read_table(pa.BufferReader(payload))
        if not back.equals(month):  # every value, bit for bit (and the types)
            raise AssertionError("not lossless")
        total += payload.size
        metadata = pq.ParquetFile(pa.BufferReader(payload)).metadata
        for group in range(metadata.num_row_groups):
            for i in range(metadata.num_columns):
                chunk = metadata.row_group(group).column(i)
                columns[chunk.path_in_schema] = (
                    columns.get(chunk.path_in_schema, 0) + chunk.total_compressed_size
                )
    rows = table.num_rows
    return {
        "total": total / rows,
        "timestamp": columns["timestamp"] / rows,
        "price": sum(columns[c] for c in FLOATS[:4]) / 4 / rows,
        "volume": columns["volume"] / rows,
    }


def main() -> None:
    data = {"synthetic 365 d": synthetic.minutes(date(2023, 1, 1), 365)}
    if REAL_FILES:
        data = {"real ADA/BTC 2 d": real_candles(), **data}
    month = month_tables(served_table(data["synthetic 365 d"]))[0]
    chosen = variants()
    write_s: dict[str, list[float]] = {name: [] for name in chosen}
    for _ in range(3):
        for name, options in chosen.items():
            t0 = time.perf_counter()
            write(month, options)
            write_s[name].append(time.perf_counter() - t0)
    print(f"{'variant':50s} " + "  ".join(f"{k:>34s}" for k in data) + "  write 1 month")
    for name, options in chosen.items():
        cells = []
        for frame in data.values():
            m = measure(served_table(frame, completeness="without" not in name), options)
            cells.append(
                f"{m['total']:6.2f} B (ts {m['timestamp']:.2f} px {m['price']:.2f} vol {m['volume']:.2f})"
            )
        print(
            f"{name:50s} "
            + "  ".join(f"{c:>34s}" for c in cells)
            + f"  {statistics.median(write_s[name]) * 1e3:6.0f} ms"
        )


if __name__ == "__main__":
    main()
