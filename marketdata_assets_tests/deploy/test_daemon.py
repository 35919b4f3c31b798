"""The compose topology as local processes: Postgres (scratch database), a gRPC code server and
``dagster-daemon run`` over the team dagster.yaml. Runs submitted like the UI submits them are queued,
launched by the daemon within the venue pool limits, executed by the code server, and recorded in Postgres."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import AssetKey, DagsterEventType, DagsterRunStatus

from marketdata_assets_tests.deploy.team import (
    Service,
    TeamHome,
    submit_asset_runs,
    wait_for_runs,
)

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

RUN_TIMEOUT_S = 240


def _range(day: str, symbol: str = "BTCUSDT") -> dict[str, str]:
    return {
        "dagster/asset_partition_range_start": f"{day}|{symbol}",
        "dagster/asset_partition_range_end": f"{day}|{symbol}",
    }


def test_queued_runs_are_launched_by_the_daemon_one_per_venue_pool_and_recorded_in_postgres(
    team_instance,  # noqa: ANN001
    postgres_dagster_home: TeamHome,
    code_server: tuple[Service, Path],
    running_daemon: Service,
    team_sim_config: Path,
) -> None:
    server, workspace = code_server
    key = ["binance/ohlcv_1m_raw"]

    # 1. one run: queued by the coordinator, launched by the daemon, executed by the code server
    [first] = submit_asset_runs(team_instance, workspace, [(key, _range("2024-03-02"))])
    assert first.status == DagsterRunStatus.QUEUED
    wait_for_runs(team_instance, [first.run_id], RUN_TIMEOUT_S, [running_daemon, server])
    # the daemon registered the venue pool with the yaml's default_limit when it first met it
    limits = {p.name: (p.limit, p.from_default) for p in team_instance.event_log_storage.get_pool_limits()}
    assert limits.get("venue_binance") == (1, True), limits

    # 2. two more runs of the same venue: the pool holds the second in the queue until the first ends
    # (max_concurrent_runs, 8, alone would launch both in one pass)
    days = ("2024-03-04", "2024-03-05")
    runs = submit_asset_runs(team_instance, workspace, [(key, _range(day)) for day in days])
    assert [r.status for r in runs] == [DagsterRunStatus.QUEUED] * 2
    wait_for_runs(team_instance, [r.run_id for r in runs], RUN_TIMEOUT_S, [running_daemon, server])

    def launched_at(run_id: str) -> float:
        [event] = team_instance.all_logs(run_id, of_type=DagsterEventType.RUN_STARTING)
        return event.timestamp

    earlier, later = sorted((r.run_id for r in runs), key=launched_at)
    earlier_end = team_instance.get_run_record_by_id(earlier).end_time
    assert launched_at(later) >= earlier_end, (
        f"the second binance run was launched {earlier_end - launched_at(later):.1f} s before the first "
        "ended: the venue_binance pool did not hold it in the queue"
    )

    # 3. everything is in Postgres: through Dagster and with plain SQL; the Parquet is on disk
    run_ids = [first.run_id, *(r.run_id for r in runs)]
    records = team_instance.fetch_materializations(AssetKey(["binance", "ohlcv_1m_raw"]), limit=50).records
    mine = {r.partition_key: r for r in records if r.run_id in run_ids}
    assert set(mine) == {f"{day}|BTCUSDT" for day in ("2024-03-02", *days)}
    assert all(r.asset_materialization.metadata["rows"].value == 1440 for r in mine.values())
    statuses = postgres_dagster_home.sql("SELECT status FROM runs WHERE run_id = ANY(%s)", [run_ids])
    assert statuses == [("SUCCESS",)] * 3
    for run_id in run_ids:
        types = {e.dagster_event.event_type for e in team_instance.all_logs(run_id) if e.dagster_event}
        assert {
            DagsterEventType.RUN_ENQUEUED,
            DagsterEventType.RUN_STARTING,
            DagsterEventType.RUN_SUCCESS,
        } <= types
    written = team_sim_config.parent / "data" / "raw" / "ohlcv_1m" / "exchange=binance" / "symbol=BTCUSDT"
    assert all((written / f"date={day}" / "data.parquet").is_file() for day in ("2024-03-02", *days))
