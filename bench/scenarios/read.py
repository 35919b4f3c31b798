"""``read``: ``MarketDataClient.get_historical_data`` vs reading the same rows other ways.

Synthetic served data (13 months of 1m for one Binance symbol, and its 1h, written by the project's
own writer ``storage.served.write_served_days``), then per case, interleaved, repeated:

* ``project``: ``client.get_historical_data(...)`` (a pandas frame);
* floor ``parquet 1 file``: ``pyarrow.parquet.read_table(f).to_pandas()`` of one file (pyarrow
  defaults) holding exactly the rows the client returns;
* ``feather``: freqtrade's format, ``pandas.read_feather`` of one file with the same rows;
* ``duckdb``: ``read_parquet`` over the served month files (hive partitioning, the range filter,
  ``ORDER BY timestamp``, ``.df()``), one connection reused;
* ``polars``: ``scan_parquet`` over the served month files, the same filter, ``collect()`` (a polars
  frame: no pandas conversion).
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bench import synthetic
from bench.common import Row, ScenarioResult, median, timed_load

NAME = "read"
DEFAULT_REPEATS = 21  # reads of 5-60 ms: with 5 the median moved 1.17x..1.52x between runs
VENUE, SYMBOL, KEY = "binance", "BTC/USDT", "BTCUSDT"
FIRST = date(2023, 1, 1)


def cases(quick: bool) -> dict[str, tuple[str, str, str]]:
    if quick:
        return {
            "1m, 1 month": ("1m", "2023-01-01", "2023-02-01"),
            "1h, 1 month": ("1h", "2023-01-01", "2023-02-01"),
        }
    return {
        "1m, 1 year": ("1m", "2023-01-01", "2024-01-01"),
        "1m, 1 month": ("1m", "2024-01-01", "2024-02-01"),
        "1h, 1 year": ("1h", "2023-01-01", "2024-01-01"),
    }


def build(root_dir: Path, days: int) -> None:
    from marketdata_assets.storage.root import StorageRoot
    from marketdata_assets.storage.served import write_served_days
    from marketdata_assets.transform.resample import resample_all

    root = StorageRoot.from_uri(root_dir)
    frame = synthetic.minutes(FIRST, days)
    by_day = synthetic.by_day(frame)
    month: dict[str, dict] = {}
    for day, part in by_day.items():
        month.setdefault(day.strftime("%Y-%m"), {})[day] = part
    for frames in month.values():
        write_served_days(root, "1m", VENUE, KEY, frames)
        hourly = {day: resample_all(part, ["1h"])["1h"] for day, part in frames.items()}
        write_served_days(root, "1h", VENUE, KEY, hourly)


def run(workdir: Path, repeats: int, quick: bool = False) -> ScenarioResult:
    import duckdb

    from marketdata_assets.client import MarketDataClient

    try:
        import polars as pl
    except ImportError:  # pragma: no cover - polars is in the dev group
        pl = None

    result = ScenarioResult(NAME, repeats=repeats)
    with timed_load(result):
        root_dir = workdir / "root"
        t0 = time.perf_counter()
        build(root_dir, 31 if quick else 396)
        result.notes.append(f"built the served data in {time.perf_counter() - t0:.1f} s")
        client = MarketDataClient(root=str(root_dir))
        con = duckdb.connect()
        times: dict[str, dict[str, list[float]]] = {}
        rows: dict[str, int] = {}
        for case, (tf, start, end) in cases(quick).items():
            expected = client.get_historical_data(SYMBOL, VENUE, tf, start, end)
            rows[case] = len(expected)
            flat = expected.reset_index()
            one_file = workdir / f"{tf}-{start}.parquet"
            pq.write_table(pa.Table.from_pandas(flat, preserve_index=False), one_file)
            feather = workdir / f"{tf}-{start}.feather"
            flat.to_feather(feather)
            glob = str(root_dir / "candles" / f"timeframe={tf}" / "**" / "data.parquet")
            lo = datetime.fromisoformat(start).replace(tzinfo=UTC)
            hi = datetime.fromisoformat(end).replace(tzinfo=UTC)
            sql = (
                f"SELECT * FROM read_parquet('{glob}', hive_partitioning = true) "
                f"WHERE exchange = '{VENUE}' AND symbol = '{KEY}' AND timestamp >= ? AND timestamp < ? "
                "ORDER BY timestamp"
            )
            methods = {
                "project": lambda tf=tf, start=start, end=end: client.get_historical_data(
                    SYMBOL, VENUE, tf, start, end
                ),
                "parquet 1 file": lambda f=one_file: pq.read_table(f).to_pandas(),
                "feather": lambda f=feather: pd.read_feather(f),
                "duckdb": lambda sql=sql, lo=lo, hi=hi: con.execute(sql, [lo, hi]).df(),
            }
            if pl is not None:
                methods["polars"] = lambda glob=glob, lo=lo, hi=hi: (
                    pl.scan_parquet(glob, hive_partitioning=True)
                    .filter(
                        (pl.col("exchange") == VENUE)
                        & (pl.col("symbol") == KEY)
                        & (pl.col("timestamp") >= lo)
                        & (pl.col("timestamp") < hi)
                    )
                    .sort("timestamp")
                    .collect()
                )
            else:
                result.notes.append("polars not installed: skipped")
            for name, fn in methods.items():  # one untimed call each: same rows?
                got = fn()
                if len(got) != rows[case]:
                    result.notes.append(f"{case} {name}: {len(got)} rows, the client {rows[case]}")
            times[case] = {name: [] for name in methods}
            for _ in range(repeats):
                for name, fn in methods.items():
                    t = time.perf_counter()
                    fn()
                    times[case][name].append(time.perf_counter() - t)
            proj = median(times[case]["project"])
            for name in methods:
                if name == "project":
                    continue
                note = f"{rows[case]:,} rows" if name == "parquet 1 file" else ""
                result.rows.append(
                    Row(NAME, case, "read s", "s", proj, median(times[case][name]), name, note)
                )
        con.close()
    result.samples = {"times_s": times, "rows": rows}
    return result
