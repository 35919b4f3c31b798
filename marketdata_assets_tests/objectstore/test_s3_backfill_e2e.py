"""End to end on object storage: Dagster ingests from the simulator into an s3:// root on a real S3
server (moto, loopback), validates, resamples and serves there, and the client reads it back."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from dagster import DagsterInstance, DagsterRunStatus
from dagster._core.test_utils import instance_for_test

from marketdata_assets.client import MarketDataClient
from marketdata_assets.settings import load_settings
from marketdata_assets.storage.locks import LOCK_DSN_ENV
from marketdata_assets.storage.raw import read_raw_candles, read_raw_dvol
from marketdata_assets.storage.root import StorageRoot
from marketdata_assets_tests.dagster.test_raw_ingestion_e2e import partition_metadata, run, sim_settings
from marketdata_assets_tests.s3 import MotoS3

pytestmark = pytest.mark.e2e

CHAIN = ["binance/ohlcv_1m_raw", "binance/ohlcv_1m", "binance/gaps"] + [
    f"binance/ohlcv_{tf}" for tf in ("5m", "15m", "1h", "4h", "1d")
]
DAYS = [date(2024, 3, 4), date(2024, 3, 5)]


def _relative_keys(s3: MotoS3, uri: str) -> list[str]:
    prefix = uri.split("/", 3)[3]
    return [k.removeprefix(prefix + "/") for k in s3.keys(prefix)]


def test_dagster_writes_the_chain_to_s3_and_the_client_reads_it(tmp_path: Path, simulator, s3_env):
    uri = s3_env.new_prefix_uri()
    local = sim_settings(tmp_path, simulator)
    # The documented override: MARKETDATA_ROOT replaces storage.root.
    settings = load_settings(local.path, environ={"MARKETDATA_ROOT": uri})
    assert settings.storage_root == uri
    with instance_for_test() as instance:
        result = run(settings, CHAIN, "2024-03-04|BTCUSDT", "2024-03-05|ETHUSDT", instance)
        assert result.success
        raw_meta = partition_metadata(instance, "binance/ohlcv_1m_raw")
    assert set(raw_meta) == {f"{d.isoformat()}|{s}" for d in DAYS for s in ("BTCUSDT", "ETHUSDT")}

    keys = _relative_keys(s3_env, uri)
    assert "_root.json" in keys
    assert not [k for k in keys if "/.tmp-" in k]  # every temp object was moved or removed
    for symbol in ("BTCUSDT", "ETHUSDT"):
        for day in DAYS:
            assert (
                f"raw/ohlcv_1m/exchange=binance/symbol={symbol}/date={day.isoformat()}/data.parquet" in keys
            )
        for tf in ("1m", "5m", "15m", "1h", "4h", "1d"):
            assert (
                f"candles/timeframe={tf}/exchange=binance/symbol={symbol}/month=2024-03/data.parquet" in keys
            )
    root = StorageRoot.from_uri(uri)
    assert root.read_claim() == {"environment": "e2e", "synthetic": True}

    client = MarketDataClient(root=uri)
    minutes = client.get_historical_data("BTC/USDT", "binance", "1m", "2024-03-04", "2024-03-06")
    raw = pd.concat([read_raw_candles(root, "binance", "BTCUSDT", d) for d in DAYS])
    raw = raw.drop_duplicates("timestamp").set_index("timestamp").sort_index()
    assert len(minutes) == 2 * 1440 and minutes["complete"].all()
    pd.testing.assert_frame_equal(
        minutes[["open", "high", "low", "close", "volume"]],
        raw[["open", "high", "low", "close", "volume"]],
        check_freq=False,
    )
    hours = client.get_historical_data("ETH/USDT", "binance", "1h", "2024-03-04", "2024-03-06")
    assert len(hours) == 48 and hours["complete"].all() and (hours["n_minutes"] == 60).all()
    first_hour = client.get_historical_data(
        "ETH/USDT", "binance", "1m", "2024-03-04T00:00", "2024-03-04T01:00"
    )
    assert (
        hours["high"].iloc[0] == first_hour["high"].max()
        and hours["close"].iloc[0] == first_hour["close"].iloc[-1]
    )
    daily = client.get_historical_data("BTCUSDT", "binance", "1d", "2024-03-04", "2024-03-06")
    assert list(daily.index.date) == DAYS
    available = client.available()
    assert set(available["timeframe"]) == {"1m", "5m", "15m", "1h", "4h", "1d"}
    assert set(available["symbol"]) == {"BTCUSDT", "ETHUSDT"} and (available["gap_count"] == 0).all()


@pytest.mark.postgres
def test_marketdata_backfill_cli_writes_to_s3_and_the_client_reads_it(
    tmp_path: Path, simulator, s3_env, pg_dsn
):
    """The command a team runs (`marketdata backfill`), venues in parallel worker processes, with the
    root, the object-store endpoint and the lock database (Postgres month locks) only in the environment."""
    uri = s3_env.new_prefix_uri()
    config = sim_settings(tmp_path, simulator).path
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {
        **os.environ,
        "MARKETDATA_ROOT": uri,
        LOCK_DSN_ENV: pg_dsn,
        "DAGSTER_HOME": str(home),
    }
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "marketdata_assets.cli",
            "backfill",
            "--config",
            str(config),
            "--venue",
            "binance,deribit",
            "--symbols",
            "BTC/USDT",
            "--start",
            "2024-03-04",
            "--end",
            "2024-03-05",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    # The workers took Postgres month locks: without a lock database each would warn that its month
    # rewrites are serialised within its own process only.
    assert "no lock database" not in completed.stdout + completed.stderr
    root = StorageRoot.from_uri(uri)
    for day in DAYS:
        candles = read_raw_candles(root, "binance", "BTCUSDT", day)
        assert len(candles) == 1440 and candles["timestamp"].dt.date.eq(day).all()
        assert len(read_raw_dvol(root, "BTC", day)) == 1440
    # The backfill computes the chain too: the client reads served candles and DVOL from the bucket.
    client = MarketDataClient(root=uri)
    hours = client.get_historical_data("BTC/USDT", "binance", "1h", "2024-03-04", "2024-03-06")
    assert len(hours) == 48 and hours["complete"].all()
    assert len(client.dvol("BTC", "1h", "2024-03-04", "2024-03-06")) == 48
    with DagsterInstance.from_config(str(home)) as instance:  # the instance DAGSTER_HOME names
        runs = instance.get_runs()
        assert runs and {r.status for r in runs} == {DagsterRunStatus.SUCCESS}
        recorded = partition_metadata(instance, "binance/ohlcv_1m_raw")
    assert set(recorded) == {f"{d.isoformat()}|BTCUSDT" for d in DAYS}
