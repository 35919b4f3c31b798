"""Compaction: merges leftovers with day-replacement semantics, removes stale temp files, and a second
run is a no-op that keeps every row (the failure NautilusTrader's consolidation had, #3875)."""

from __future__ import annotations

import os
import time
from datetime import date

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from marketdata_assets.storage.compaction import compact, remove_stale_tmp
from marketdata_assets.storage.root import StorageRoot
from marketdata_assets.storage.served import read_gaps, read_served_candles, write_gap_days, write_served_days
from marketdata_assets_tests.storage.helpers import gap_rows, minute_candles

D = [date(2024, 5, d) for d in range(1, 8)]
MONTH_DIR = "candles/timeframe=1m/exchange=binance/symbol=BTCUSDT/month=2024-05"


def _leftover(path, frame, *, age_s: float) -> None:
    """A Parquet file as another tool (or an older layout) would have left it, ``age_s`` seconds old."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    stamp = time.time() - age_s
    os.utime(path, (stamp, stamp))


def _age(path, age_s: float) -> None:
    stamp = time.time() - age_s
    os.utime(path, (stamp, stamp))


def _day_bases(root) -> dict[date, float]:
    stored = read_served_candles(root, "1m", "binance", "BTCUSDT")
    assert stored["timestamp"].is_unique
    return {day: float(group["close"].iloc[0]) for day, group in stored.groupby(stored["timestamp"].dt.date)}


def test_leftovers_merge_by_day_newest_wins_and_a_second_run_keeps_everything(tmp_path):
    root = StorageRoot.from_uri(tmp_path)
    month_dir = tmp_path / MONTH_DIR
    write_served_days(root, "1m", "binance", "BTCUSDT", {d: minute_candles(d, base=1.0) for d in D[:3]})
    _age(month_dir / "data.parquet", 600)
    # older than data.parquet: its day 3 loses to data.parquet, its day 4 is new
    _leftover(
        month_dir / "part-0.parquet", pd.concat([minute_candles(d, base=2.0) for d in D[2:4]]), age_s=3600
    )
    # newer than data.parquet: its day 2 replaces data.parquet's; an older layout wrote partition columns
    newer = minute_candles(D[1], base=3.0).assign(symbol="BTCUSDT", exchange="binance", month="2024-05")
    _leftover(month_dir / "date=2024-05-02" / "data.parquet", newer, age_s=60)

    report = compact(root, "candles")
    assert sorted(
        os.path.basename(os.path.dirname(p)) + "/" + os.path.basename(p) for p in report.merged
    ) == [
        "date=2024-05-02/data.parquet",
        "month=2024-05/part-0.parquet",
    ]
    assert [w.rows for w in report.written] == [4 * 1440]
    assert sorted(p.name for p in month_dir.iterdir()) == ["data.parquet"]  # emptied day dir removed too
    assert _day_bases(root) == {D[0]: 1.0, D[1]: 3.0, D[2]: 1.0, D[3]: 2.0}
    merged_bytes = (month_dir / "data.parquet").read_bytes()

    second = compact(root, "candles")
    assert not second.changed and second.skipped == []
    assert (month_dir / "data.parquet").read_bytes() == merged_bytes
    assert _day_bases(root) == {D[0]: 1.0, D[1]: 3.0, D[2]: 1.0, D[3]: 2.0}


def test_crash_after_commit_before_delete_is_repaired_without_loss(tmp_path):
    """The merged file was committed but the merged leftovers are still there: data.parquet is newer,
    so re-merging them changes nothing, and they are removed."""
    root = StorageRoot.from_uri(tmp_path)
    month_dir = tmp_path / MONTH_DIR
    leftover = pd.concat([minute_candles(d, base=5.0) for d in D[:2]])
    _leftover(month_dir / "part-0.parquet", leftover, age_s=3600)
    compact(root, "candles")
    committed = (month_dir / "data.parquet").read_bytes()
    write_served_days(root, "1m", "binance", "BTCUSDT", {D[0]: minute_candles(D[0], base=6.0)})  # a later run
    after_update = (month_dir / "data.parquet").read_bytes()
    assert after_update != committed
    _leftover(month_dir / "part-0.parquet", leftover, age_s=3600)  # the "undeleted" leftover

    report = compact(root, "candles")
    assert len(report.merged) == 1
    assert (month_dir / "data.parquet").read_bytes() == after_update
    assert _day_bases(root) == {D[0]: 6.0, D[1]: 5.0}


def test_files_that_cannot_be_merged_are_kept_and_reported(tmp_path):
    root = StorageRoot.from_uri(tmp_path)
    month_dir = tmp_path / MONTH_DIR
    write_served_days(root, "1m", "binance", "BTCUSDT", {D[0]: minute_candles(D[0], base=1.0)})
    (month_dir / "broken.parquet").write_bytes(b"not parquet at all")
    _leftover(month_dir / "june.parquet", minute_candles(date(2024, 6, 1)), age_s=10)
    _leftover(month_dir / "foreign.parquet", pd.DataFrame({"a": [1, 2]}), age_s=10)
    _leftover(month_dir / "good.parquet", minute_candles(D[4], base=4.0), age_s=10)

    for _ in range(2):
        report = compact(root, "candles")
        assert sorted(os.path.basename(s.split(":")[0]) for s in report.skipped) == [
            "broken.parquet",
            "foreign.parquet",
            "june.parquet",
        ]
        assert {p.name for p in month_dir.iterdir()} == {
            "data.parquet",
            "broken.parquet",
            "june.parquet",
            "foreign.parquet",
        }
        assert _day_bases(root) == {D[0]: 1.0, D[4]: 4.0}


def test_stale_temp_files_are_removed_and_fresh_ones_kept(tmp_path):
    root = StorageRoot.from_uri(tmp_path)
    write_served_days(root, "1m", "binance", "BTCUSDT", {D[0]: minute_candles(D[0])})
    month_dir = tmp_path / MONTH_DIR
    stale = month_dir / ".tmp-00000000000000000000000000000000.tmp"
    fresh = month_dir / ".tmp-11111111111111111111111111111111.tmp"
    stale.write_bytes(b"crashed writer")
    fresh.write_bytes(b"writer still running")
    _age(stale, 2 * 3600)
    raw_tmp = tmp_path / "raw/ohlcv_1m/exchange=binance/symbol=BTCUSDT/date=2024-05-01/.tmp-2222.tmp"
    raw_tmp.parent.mkdir(parents=True)
    raw_tmp.write_bytes(b"x")
    _age(raw_tmp, 2 * 3600)

    report = compact(root, "candles")
    assert report.removed_tmp == [str(stale)]
    assert not stale.exists() and fresh.exists()
    assert remove_stale_tmp(root, "raw/ohlcv_1m") == [str(raw_tmp)]
    assert len(read_served_candles(root, "1m", "binance", "BTCUSDT")) == 1440


def test_gap_leftovers_merge_by_their_day_column(tmp_path):
    root = StorageRoot.from_uri(tmp_path)
    write_gap_days(root, "bybit", "SOLUSDT", {D[0]: gap_rows(D[0], 10, venue="bybit")})
    month_dir = tmp_path / "gaps/exchange=bybit/symbol=SOLUSDT/month=2024-05"
    _age(month_dir / "data.parquet", 600)
    _leftover(month_dir / "old.parquet", gap_rows(D[1], 30, 40, venue="bybit").assign(day=D[1]), age_s=60)
    compact(root, "gaps")
    assert not compact(root, "gaps").changed
    gaps = read_gaps(root, "bybit", "SOLUSDT")
    assert gaps["day"].tolist() == [D[0], D[1], D[1]]
