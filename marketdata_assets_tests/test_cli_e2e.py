"""``marketdata backfill`` as a user runs it: a subprocess, one worker per venue, a real DAGSTER_HOME,
the simulator over HTTP; the served layer is then read back through the client."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from marketdata_assets.client import MarketDataClient
from marketdata_assets.settings import PROJECT_DIR

pytestmark = pytest.mark.e2e


def write_config(tmp_path: Path, url: str) -> Path:
    venues = "".join(
        f"""
          {venue}:
            symbols: [BTC/USDT]
            start_date: 2024-03-01
            base_url: {url}/{venue}
            rate_limit_ms: 5
            max_retries: 2
        """
        for venue in ("binance", "okx")
    )
    text = f"""
        environment: clitest
        synthetic: true
        storage:
          root: {tmp_path / "data"}
        venues:{venues}
    """
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def backfill(tmp_path: Path, config: Path, *args: str) -> subprocess.CompletedProcess:
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    shutil.copyfile(PROJECT_DIR / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "MARKETDATA_CONFIG": str(config)}
    env.pop("MARKETDATA_ROOT", None)
    cmd = [
        sys.executable,
        "-m",
        "marketdata_assets.cli",
        "backfill",
        "--start",
        "2024-03-05",
        "--end",
        "2024-03-05",
    ]
    return subprocess.run([*cmd, *args], env=env, capture_output=True, text=True, timeout=300)


def test_backfill_serves_every_timeframe_and_names_a_held_back_day(tmp_path: Path, make_simulator) -> None:
    sim = make_simulator(seed=2)
    sim.add_fault("okx:invalid:rows=1,day=2024-03-05")
    proc = backfill(tmp_path, write_config(tmp_path, sim.url))
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert "Catalog refreshed" in output
    # the okx day was fetched and validated, but its bad rows hold it back from resampling, by name
    assert (
        "1 partition(s) failed:\n  okx BTC/USDT 2024-03-05: not resampled: validated schema check fails"
        in output
    )
    assert "run(s) failed" not in output
    [okx_row] = [line.split() for line in proc.stdout.splitlines() if line.startswith("okx ")]
    assert okx_row[2:5] == ["1", "0", "1"]  # days, ok, failed: the held-back day is not ok

    client = MarketDataClient(root=tmp_path / "data")
    for timeframe, bins in {"1m": 1440, "5m": 288, "1h": 24, "1d": 1}.items():
        frame = client.get_historical_data("BTC/USDT", "binance", timeframe, "2024-03-05", "2024-03-06")
        assert len(frame) == bins, (timeframe, len(frame))
    available = client.available()
    okx = available[available["exchange"] == "okx"]
    assert list(okx["timeframe"]) == ["1m"]  # validated minutes only: no higher timeframe for the bad day


def test_raw_only_fetches_without_serving(tmp_path: Path, simulator) -> None:
    proc = backfill(tmp_path, write_config(tmp_path, simulator.url), "--raw-only", "--venue", "binance")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Catalog refreshed" not in proc.stdout
    assert (tmp_path / "data" / "raw").is_dir()
    assert not (tmp_path / "data" / "candles").exists()
