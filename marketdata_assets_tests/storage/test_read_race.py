"""Readers of every kind racing month rewrites on a local root never fail and never see a torn file.

A writer thread keeps rewriting one month file (a different number of days each time, so the file's
size and layout change) while readers loop through ``MarketDataClient.duckdb()``, ``available()`` and
``get_historical_data``. DuckDB's own ``read_parquet`` opens a file several times per query (binding,
then once per scanning thread: seen with strace), so a rename between two opens paired the footer of
one version with the pages of the next (``TProtocolException: Invalid data``, ``don't know what
type``). Loop counts are bounded; the whole test takes a few seconds.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from marketdata_assets.client import MarketDataClient
from marketdata_assets.storage.root import StorageRoot
from marketdata_assets.storage.served import write_served_days
from marketdata_assets_tests.storage.helpers import minute_candles

DAYS = [date(2024, 3, 1) + timedelta(days=i) for i in range(6)]
REWRITES = 60  # month rewrites by the writer
MAX_READS = 400  # per reader kind, an upper bound; readers stop when the writer is done
DEADLINE_S = 30.0


def _days(base: float, days: list[date]) -> dict[date, pd.DataFrame]:
    return {
        d: minute_candles(d, base=base).assign(n_minutes=1, expected_minutes=1, complete=True) for d in days
    }


def test_readers_never_fail_while_months_are_rewritten(tmp_path: Path) -> None:
    root = StorageRoot.from_uri(tmp_path / "data")
    write_served_days(root, "1m", "binance", "BTCUSDT", _days(100.0, DAYS))
    write_served_days(root, "1m", "okx", "BTCUSDT", _days(100.0, DAYS))
    client = MarketDataClient(root=str(tmp_path / "data"))
    done = threading.Event()
    deadline = time.monotonic() + DEADLINE_S
    failures: Counter[str] = Counter()
    reads: Counter[str] = Counter()

    def writer() -> None:
        try:
            for i in range(REWRITES):
                if time.monotonic() > deadline:
                    break
                chosen = DAYS[: 1 + i % len(DAYS)]
                write_served_days(root, "1m", "binance", "BTCUSDT", _days(100.0 + i, chosen))
        finally:
            done.set()

    def read_sql() -> None:
        con = client.duckdb()
        try:
            rows = con.sql(
                "SELECT exchange, count(*), sum(volume) FROM candles GROUP BY ALL ORDER BY 1"
            ).fetchall()
        finally:
            con.close()
        assert [(r[0], r[1]) for r in rows] == [("binance", 1440 * 6), ("okx", 1440 * 6)], rows

    def read_available() -> None:
        inventory = client.available()
        assert list(inventory["rows"]) == [1440 * 6, 1440 * 6], inventory

    def read_frame() -> None:
        frame = client.get_historical_data("BTC/USDT", "binance", "1m", "2024-03-01", "2024-03-07")
        assert len(frame) == 1440 * 6

    def reader(kind: str, read) -> None:
        for _ in range(MAX_READS):
            if done.is_set():
                break
            try:
                read()
                reads[kind] += 1
            except Exception as exc:  # noqa: BLE001 - every failure is counted and reported
                failures[f"{kind}: {type(exc).__name__}: {str(exc)[:80]}"] += 1

    threads = [threading.Thread(target=writer)] + [
        threading.Thread(target=reader, args=(kind, read))
        for kind, read in (("duckdb", read_sql), ("available", read_available), ("pandas", read_frame))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(f"reads: {dict(reads)}, failures: {sum(failures.values())}")
    assert all(reads[kind] >= 5 for kind in ("duckdb", "available", "pandas")), reads
    assert not failures, f"{sum(failures.values())} failed reads ({dict(reads)} succeeded): {dict(failures)}"


READERS = 8
READS_PER_READER = 15


def test_eight_concurrent_client_readers_during_rewrites_all_get_whole_months(tmp_path: Path) -> None:
    """8 readers at once (each its own client, kinds mixed), while the month is rewritten: every read
    returns all rows of both series, none fails, none waits on the writer's lock."""
    root = StorageRoot.from_uri(tmp_path / "data")
    write_served_days(root, "1m", "binance", "BTCUSDT", _days(100.0, DAYS))
    write_served_days(root, "1m", "okx", "BTCUSDT", _days(100.0, DAYS))
    done = threading.Event()
    deadline = time.monotonic() + DEADLINE_S
    failures: Counter[str] = Counter()
    reads: Counter[int] = Counter()

    def writer() -> None:
        try:
            for i in range(REWRITES):
                if done.is_set() or time.monotonic() > deadline:
                    break
                write_served_days(root, "1m", "binance", "BTCUSDT", _days(100.0 + i, DAYS))
        finally:
            done.set()

    def reader(n: int) -> None:
        client = MarketDataClient(root=str(tmp_path / "data"))
        for _ in range(READS_PER_READER):
            if time.monotonic() > deadline:
                break
            try:
                if n % 3 == 0:
                    con = client.duckdb()
                    try:
                        rows = con.sql("SELECT count(*) FROM candles WHERE exchange = 'binance'").fetchall()[
                            0
                        ][0]
                    finally:
                        con.close()
                    assert rows == 1440 * 6
                elif n % 3 == 1:
                    frame = client.get_historical_data(
                        "BTC/USDT", "binance", "1m", "2024-03-01", "2024-03-07"
                    )
                    assert len(frame) == 1440 * 6 and frame.index.is_unique
                else:
                    assert list(client.available()["rows"]) == [1440 * 6, 1440 * 6]
                reads[n] += 1
            except Exception as exc:  # noqa: BLE001 - every failure is counted and reported
                failures[f"reader {n}: {type(exc).__name__}: {str(exc)[:80]}"] += 1

    write_thread = threading.Thread(target=writer)
    readers = [threading.Thread(target=reader, args=(n,)) for n in range(READERS)]
    write_thread.start()
    for thread in readers:
        thread.start()
    for thread in readers:
        thread.join()
    done.set()
    write_thread.join()
    assert not failures, f"{sum(failures.values())} failed reads: {dict(failures)}"
    assert sorted(reads) == list(range(READERS)) and sum(reads.values()) >= READERS * 5, reads
