"""The benchmark harness (``make bench``) still runs: each scenario's code at a tiny size.

No timings are asserted here: benchmarks are not tests. The Dagster-backed scenarios
(``backfill_cpu``, ``long_range``, ``rate_limits``) are covered through their parts: the plain
baseline script against the simulator, the process-tree meter, the floor arithmetic; the whole of
them runs with ``uv run python -m bench.run --quick``.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(PROJECT))  # the harness lives in bench/, outside the package

from bench import common, dagster_floor, plain_backfill  # noqa: E402
from bench.scenarios import live, rate_limits, read, resample, storage  # noqa: E402


@pytest.mark.parametrize("scenario", [read, storage, resample])
def test_in_process_scenarios_run_at_tiny_size(scenario, tmp_path: Path) -> None:
    result = scenario.run(tmp_path, 1, quick=True)
    assert result.rows and all(row.project is not None and row.baseline is not None for row in result.rows)
    assert not [n for n in result.notes if "MISMATCH" in n or "rows, the client" in n]


def test_live_scenario_runs_at_tiny_size(tmp_path: Path) -> None:
    """The simulator and the live service on a stepped clock over loopback HTTP, the clients in their
    own process: every figure is measured, every stepped minute's event arrives."""
    result = live.run(tmp_path, 1, quick=True)
    assert all(row.project is not None and row.baseline is not None for row in result.rows)
    cases = {row.case for row in result.rows}
    assert {"buffer 1m (100 candles), 8 clients", "minute close -> SSE event received"} <= cases
    assert any(case.startswith("history 1m") for case in cases)
    assert any(row.metric == "KB retained" for row in result.rows)
    assert not [n for n in result.notes if "not received" in n or "no 1m event" in n or "non-200" in n]


def test_storage_is_lossless_for_every_reader(tmp_path: Path) -> None:
    result = storage.run(tmp_path, 1, quick=True)
    assert all(case["lossless"].startswith("all ") for case in result.samples["bytes"].values())


def test_resample_agrees_with_pandas_on_bins_without_fillers(tmp_path: Path) -> None:
    result = resample.run(tmp_path, 1, quick=True)
    assert all(c["same_bins"] and c["bins_without_filler_equal"] for c in result.samples["check"].values())


def test_plain_baseline_writes_a_day_per_timeframe(tmp_path: Path, shared_simulator) -> None:
    day = date(2024, 3, 5)
    argv = ["--sim", shared_simulator.url, "--venue", "binance", "--symbols", "BTC/USDT"]
    assert plain_backfill.main([*argv, "--start", str(day), "--end", str(day), "--out", str(tmp_path)]) == 0
    import pandas as pd

    assert len(pd.read_parquet(tmp_path / "1m" / "binance" / "BTCUSDT" / f"{day}.parquet")) == 1440
    assert len(pd.read_parquet(tmp_path / "1h" / "binance" / "BTCUSDT" / f"{day}.parquet")) == 24


def test_dagster_floor_records_every_partition_of_its_shape(tmp_path: Path) -> None:
    from dagster import AssetKey, AssetRecordsFilter, DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    assert dagster_floor.main(["--symbols", "2", "--days", "2", "--home", str(tmp_path)]) == 0
    instance = DagsterInstance.from_ref(InstanceRef.from_dir(str(tmp_path)))
    for path in (["floor", "ohlcv_1m_raw"], ["floor", "gaps"], ["floor", "ohlcv_1d"]):
        records = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey(path)), limit=10
        ).records
        assert sorted(r.partition_key for r in records) == [
            "2024-03-01|SYM0",
            "2024-03-01|SYM1",
            "2024-03-02|SYM0",
            "2024-03-02|SYM1",
        ]
    assert len(instance.get_runs()) == 2  # one run per symbol, as marketdata backfill plans them


def test_meter_counts_the_whole_tree(tmp_path: Path) -> None:
    spin = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.5: pass"
    parent = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {spin!r}])"
    measured = common.run_measured([sys.executable, "-c", parent], log=tmp_path / "log")
    assert measured.returncode == 0 and not measured.killed
    assert measured.cpu_s >= 0.5  # the grandchild's CPU is counted


def test_meter_ends_the_group_at_the_bound(tmp_path: Path) -> None:
    measured = common.run_measured(
        [sys.executable, "-c", "import time; time.sleep(60)"], log=tmp_path / "log", timeout_s=0.5
    )
    assert measured.killed and measured.wall_s < 10


def test_rate_limit_floor_arithmetic() -> None:
    # OKX: 3 symbols x 3 days x 15 pages = 135 requests at 20 / 2 s: 20 at once, then 115 at 10/s
    assert rate_limits.floor_s("okx", 3, 3) == (135, pytest.approx(11.5))
    assert rate_limits.floor_s("binance", 3, 3) == (18, 0.0)


def test_run_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench.run", "--help"], cwd=PROJECT, capture_output=True, text=True
    )
    assert out.returncode == 0 and "latest.json" in out.stdout
