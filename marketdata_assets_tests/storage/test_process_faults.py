"""Process faults on a local root: a full disk during a write, a month writer killed with SIGKILL.

Disk full is simulated: the Parquet write raises ``OSError(ENOSPC)`` after it has written part of the
temp file, exactly what the kernel answers a ``write(2)`` on a full filesystem (a real tmpfs of 1 MB
needs ``mount``, i.e. root, which CI does not have). The kill is real: a child process rewrites one
month over and over and gets ``SIGKILL`` at an arbitrary point of a rewrite. Both are bounded (~5 s).
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from marketdata_assets.storage import atomic
from marketdata_assets.storage.compaction import compact
from marketdata_assets.storage.raw import read_raw_candles
from marketdata_assets.storage.revisions import store_raw_candles
from marketdata_assets.storage.root import StorageRoot
from marketdata_assets.storage.served import read_served_candles, write_served_days
from marketdata_assets_tests.storage.helpers import minute_candles

DAYS = [date(2024, 3, 1) + timedelta(days=i) for i in range(4)]
MONTH = "candles/timeframe=1m/exchange=binance/symbol=BTCUSDT/month=2024-03/data.parquet"
KILL_AFTER_REWRITES = 3
DEADLINE_S = 60.0


def _disk_fills_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every Parquet write gets 4 KiB into its temp file, then the device is full."""

    def write_until_full(table: pa.Table, sink: pa.NativeFile) -> None:
        sink.write(b"PAR1" + b"\0" * 4092)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic, "_write_parquet", write_until_full)


def _leftover_tmp(root_dir: Path) -> list[Path]:
    return [p for p in root_dir.rglob("*") if p.is_file() and atomic.is_tmp_name(p.name)]


def test_disk_full_during_a_month_rewrite_is_a_clear_error_and_the_month_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = StorageRoot.from_uri(tmp_path)
    write_served_days(root, "1m", "binance", "BTCUSDT", {d: minute_candles(d, base=100.0) for d in DAYS})
    before = (tmp_path / MONTH).read_bytes()
    _disk_fills_up(monkeypatch)
    with pytest.raises(OSError, match="No space left on device") as raised:
        write_served_days(root, "1m", "binance", "BTCUSDT", {DAYS[0]: minute_candles(DAYS[0], base=200.0)})
    assert raised.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert (tmp_path / MONTH).read_bytes() == before  # every stored row, unchanged
    assert _leftover_tmp(tmp_path) == []  # the partial temp file is removed, not left to fill the disk
    stored = read_served_candles(root, "1m", "binance", "BTCUSDT")
    assert len(stored) == 4 * 1440 and stored["close"].iloc[0] == minute_candles(DAYS[0])["close"].iloc[0]


def test_disk_full_during_a_raw_refetch_keeps_the_stored_day(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = StorageRoot.from_uri(tmp_path)
    store_raw_candles(root, "binance", "BTCUSDT", DAYS[0], minute_candles(DAYS[0], base=100.0, skip=(5, 6)))
    stored = read_raw_candles(root, "binance", "BTCUSDT", DAYS[0])
    _disk_fills_up(monkeypatch)
    with pytest.raises(OSError, match="No space left on device"):
        store_raw_candles(root, "binance", "BTCUSDT", DAYS[0], minute_candles(DAYS[0], base=100.0))
    monkeypatch.undo()
    assert read_raw_candles(root, "binance", "BTCUSDT", DAYS[0]).equals(stored)
    assert _leftover_tmp(tmp_path) == []


WRITER = textwrap.dedent(
    """
    import sys
    from datetime import date, timedelta
    from marketdata_assets.storage.root import StorageRoot
    from marketdata_assets.storage.served import write_served_days
    from marketdata_assets_tests.storage.helpers import minute_candles

    root = StorageRoot.from_uri(sys.argv[1])
    days = [date(2024, 3, 1) + timedelta(days=i) for i in range(4)]
    for i in range(1000):  # bounded: the parent kills it long before
        write_served_days(root, "1m", "binance", "BTCUSDT", {d: minute_candles(d, base=100.0 + i) for d in days})
        print(i, flush=True)
    """
)


def test_a_month_writer_killed_mid_rewrite_leaves_a_whole_month(tmp_path: Path) -> None:
    root = StorageRoot.from_uri(tmp_path)
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + DEADLINE_S
        done = -1
        while done < KILL_AFTER_REWRITES - 1 and time.monotonic() < deadline:
            line = child.stdout.readline()
            assert line, child.stderr.read()
            done = int(line)
        time.sleep(0.05)  # somewhere inside the next rewrite (each takes ~50-150 ms)
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    # the month file is one whole version: the last committed one (or the one whose rename won the race)
    table = pq.read_table(tmp_path / MONTH)
    assert table.num_rows == 4 * 1440
    stored = read_served_candles(root, "1m", "binance", "BTCUSDT")
    assert stored["timestamp"].is_unique and stored["timestamp"].is_monotonic_increasing
    bases = (stored["close"] - minute_candles(DAYS[0])["close"].tolist() * 4 + 100.0).round(6).unique()
    assert len(bases) == 1 and bases[0] >= 100.0 + KILL_AFTER_REWRITES - 1  # not a mix of two rewrites
    # a temp file the kill left behind is removed by compaction (which serving/catalog runs), data kept
    report = compact(root, "candles", tmp_older_than=timedelta(0))
    assert _leftover_tmp(tmp_path) == []
    assert report.skipped == []
    assert read_served_candles(root, "1m", "binance", "BTCUSDT").equals(stored)
