"""The team instance (dagster_home/team/dagster.yaml) outside Docker: DAGSTER_HOME + DAGSTER_PG_* against
the real Postgres, in a scratch database. Materialisations land in Postgres and read back from it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterEventType, DagsterInstance, materialize

from marketdata_assets.definitions import build_definitions
from marketdata_assets.settings import load_settings
from marketdata_assets.storage.raw import read_raw_candles
from marketdata_assets.storage.root import StorageRoot
from marketdata_assets_tests.deploy.team import TeamHome, environment, write_sim_config

pytestmark = pytest.mark.postgres


def test_the_team_yaml_gives_postgres_storage_queued_runs_and_venue_pools(team_instance) -> None:  # noqa: ANN001
    from dagster._core.instance.config import PoolGranularity
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    assert isinstance(team_instance.run_storage, PostgresRunStorage)
    assert isinstance(team_instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(team_instance.schedule_storage, PostgresScheduleStorage)
    assert isinstance(team_instance.run_coordinator, QueuedRunCoordinator)
    assert type(team_instance.run_launcher).__name__ == "DefaultRunLauncher"
    config = team_instance.get_concurrency_config()
    assert config.run_queue_config.max_concurrent_runs == 8
    assert config.pool_config.default_pool_limit == 1
    assert config.pool_config.pool_granularity == PoolGranularity.RUN
    assert team_instance.event_log_storage.supports_global_concurrency_limits


def test_a_missing_connection_variable_is_named_when_the_instance_loads(
    postgres_dagster_home: TeamHome,
) -> None:
    env = {k: v for k, v in postgres_dagster_home.env.items() if k != "DAGSTER_PG_HOST"}
    saved = os.environ.pop("DAGSTER_PG_HOST", None)
    try:
        with environment(env), pytest.raises(Exception, match="DAGSTER_PG_HOST"):
            DagsterInstance.get()
    finally:
        if saved is not None:
            os.environ["DAGSTER_PG_HOST"] = saved


def test_materialised_partitions_are_recorded_in_postgres(
    team_instance,
    postgres_dagster_home: TeamHome,
    tmp_path: Path,
    shared_simulator,  # noqa: ANN001
) -> None:
    settings = load_settings(
        write_sim_config(tmp_path / "settings.yaml", shared_simulator.url, tmp_path / "data"), environ={}
    )
    key = AssetKey(["binance", "ohlcv_1m_raw"])
    defs = build_definitions(settings)
    asset = next(a for a in defs.assets if key in getattr(a, "keys", ()))
    result = materialize(
        [asset],
        selection=[key],
        resources=defs.resources,
        instance=team_instance,
        tags={
            "dagster/asset_partition_range_start": "2024-03-04|BTCUSDT",
            "dagster/asset_partition_range_end": "2024-03-05|BTCUSDT",
        },
        raise_on_error=False,
    )
    assert result.success, [e.message for e in result.all_events if e.is_failure]

    # read back through a fresh instance: the records come from Postgres, not from the process
    with environment(postgres_dagster_home.env):
        fresh = DagsterInstance.get()
        try:
            records = fresh.fetch_materializations(key, limit=100).records
            run = fresh.get_run_by_id(result.run_id)
            event_types = {
                e.dagster_event.event_type for e in fresh.all_logs(result.run_id) if e.dagster_event
            }
        finally:
            fresh.dispose()
    mine = {r.partition_key: r for r in records if r.run_id == result.run_id}
    assert set(mine) == {"2024-03-04|BTCUSDT", "2024-03-05|BTCUSDT"}
    assert run is not None and run.is_success
    assert {
        DagsterEventType.RUN_START,
        DagsterEventType.STEP_SUCCESS,
        DagsterEventType.ASSET_MATERIALIZATION,
        DagsterEventType.RUN_SUCCESS,
    } <= event_types

    # and straight from the scratch database with SQL
    [(status,)] = postgres_dagster_home.sql("SELECT status FROM runs WHERE run_id = %s", [result.run_id])
    assert status == "SUCCESS"
    rows = postgres_dagster_home.sql(
        # distinct: a ranged run records each day twice (the run's output, then the day's own numbers)
        "SELECT DISTINCT partition FROM event_logs WHERE run_id = %s "
        "AND dagster_event_type = 'ASSET_MATERIALIZATION' ORDER BY partition",
        [result.run_id],
    )
    assert rows == [("2024-03-04|BTCUSDT",), ("2024-03-05|BTCUSDT",)]

    # the Parquet is where the settings say
    from datetime import date

    frame = read_raw_candles(
        StorageRoot.from_uri(settings.storage_root), "binance", "BTCUSDT", date(2024, 3, 5)
    )
    assert len(frame) == 1440


def test_pool_limits_are_set_per_venue_with_the_dagster_cli(
    team_instance, postgres_dagster_home: TeamHome
) -> None:  # noqa: ANN001
    # What README.md ("Running for a team", "Pool limits") tells a team to run: the limit lands in
    # Postgres and overrides default_limit.
    env = {**os.environ, **postgres_dagster_home.env}
    dagster = str(Path(sys.executable).parent / "dagster")
    out = subprocess.run(
        [dagster, "instance", "concurrency", "set", "venue_okx", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    storage = team_instance.event_log_storage
    assert storage.get_concurrency_info("venue_okx").slot_count == 2
    # a venue without its own limit gets default_limit (1) when the queue first meets the pool
    storage.initialize_concurrency_limit_to_default("venue_bybit")
    assert storage.get_concurrency_info("venue_bybit").slot_count == 1
    limits = {p.name: (p.limit, p.from_default) for p in storage.get_pool_limits()}
    assert limits["venue_okx"] == (2, False) and limits["venue_bybit"] == (1, True)
    # leave the session's database as the yaml says for the other tests
    storage.delete_concurrency_limit("venue_okx")
    assert "venue_okx" not in {p.name for p in storage.get_pool_limits()}
