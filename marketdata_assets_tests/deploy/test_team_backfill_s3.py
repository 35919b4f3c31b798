"""The team path end to end: ``dagster-daemon run`` over the Postgres-backed instance, plus
``marketdata backfill`` against the simulator with the Parquet in an S3-compatible server (moto);
the runs are recorded in Postgres, the objects land in the bucket, and the client reads them back."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from marketdata_assets.client import MarketDataClient
from marketdata_assets_tests.deploy.team import Service, TeamHome
from marketdata_assets_tests.s3 import MotoS3, moto_s3_server

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

DAY = "2024-03-05"


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoS3]:
    with moto_s3_server() as server:
        yield server


def test_backfill_records_runs_in_postgres_writes_s3_and_reads_back(
    postgres_dagster_home: TeamHome,
    code_server: tuple[Service, Path],
    running_daemon: Service,
    team_sim_config: Path,
    moto: MotoS3,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    uri = moto.new_prefix_uri()
    env = {
        **os.environ,
        **postgres_dagster_home.env,  # DAGSTER_HOME (team dagster.yaml) + DAGSTER_PG_*
        **moto.env(),
        "MARKETDATA_CONFIG": str(team_sim_config),
        "MARKETDATA_ROOT": uri,
    }
    cmd = [sys.executable, "-m", "marketdata_assets.cli", "backfill", "--venue", "binance,deribit"]
    cmd += ["--symbols", "BTC/USDT", "--start", DAY, "--end", DAY]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "no lock database" not in output  # month rewrites took Postgres advisory locks

    # the runs are in Postgres, tagged by the CLI
    rows = postgres_dagster_home.sql(
        "SELECT r.status, count(*) FROM runs r JOIN run_tags t ON t.run_id = r.run_id "
        "WHERE t.key = 'marketdata/launched_by' AND t.value = 'marketdata backfill' GROUP BY r.status"
    )
    assert dict(rows) == {"SUCCESS": 4}, rows  # binance BTC, deribit BTC, the instruments, the catalog
    # the Parquet is in the bucket, raw through served
    prefix = uri.removeprefix(f"s3://{moto.bucket}/")
    keys = moto.keys(prefix)
    assert f"{prefix}/raw/ohlcv_1m/exchange=binance/symbol=BTCUSDT/date={DAY}/data.parquet" in keys
    assert f"{prefix}/candles/timeframe=1h/exchange=binance/symbol=BTCUSDT/month=2024-03/data.parquet" in keys
    assert not [k for k in keys if ".tmp-" in k]
    # and a backtest reads it back from the bucket
    for name, value in moto.env().items():
        monkeypatch.setenv(name, value)
    client = MarketDataClient(root=uri)
    hours = client.get_historical_data("BTC/USDT", "binance", "1h", DAY, "2024-03-06")
    assert len(hours) == 24 and hours["complete"].all()
    assert len(client.dvol("BTC", "1m", DAY, "2024-03-06")) == 1440
