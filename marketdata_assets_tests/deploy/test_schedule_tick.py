"""A schedule tick launches a run: the nightly schedule, started by its settings, ticks in
``dagster-daemon`` over the Postgres-backed team instance; the run it launches is executed by the code
server, fetches yesterday from the simulator, and is recorded in Postgres with the schedule's tags."""

from __future__ import annotations

import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dagster import DagsterRunStatus, RunsFilter

from marketdata_assets_tests.deploy.team import Service, TeamHome, wait_for_runs

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

TICK_TIMEOUT_S = 150  # schedules tick on minute boundaries


@pytest.fixture(scope="module")
def team_sim_config(tmp_path_factory: pytest.TempPathFactory, shared_simulator) -> Path:  # noqa: ANN001
    """One venue and symbol, automation on with a schedule that ticks every minute."""
    base = tmp_path_factory.mktemp("schedule_tick")
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date()
    text = f"""
        environment: team-test
        synthetic: true
        storage:
          root: {base / "data"}
        venues:
          binance:
            symbols: [BTC/USDT]
            start_date: {yesterday.isoformat()}
            base_url: {shared_simulator.url}/binance
            rate_limit_ms: 5
            max_retries: 3
        automation:
          running: true
          nightly_cron: "* * * * *"
          history_backfill: false
          lookback_days: 1
          sensor_interval_s: 3600
    """
    path = base / "settings.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_a_schedule_tick_launches_a_run_recorded_in_postgres(
    team_instance,  # noqa: ANN001
    postgres_dagster_home: TeamHome,
    code_server: tuple[Service, Path],
    running_daemon: Service,
) -> None:
    server, _ = code_server
    deadline = time.monotonic() + TICK_TIMEOUT_S
    runs = []
    while time.monotonic() < deadline and not runs:
        runs = [
            r
            for r in team_instance.get_runs(
                filters=RunsFilter(tags={"dagster/schedule_name": "nightly_binance"})
            )
        ]
        time.sleep(2)
    assert runs, (
        f"no run launched by nightly_binance within {TICK_TIMEOUT_S} s\n"
        f"--- daemon ---\n{running_daemon.output()}\n--- code server ---\n{server.output()}"
    )
    run = runs[-1]  # the first tick's run
    finished = wait_for_runs(team_instance, [run.run_id], 240, [running_daemon, server])
    assert finished[run.run_id].status == DagsterRunStatus.SUCCESS
    assert run.tags["marketdata/launched_by"] == "schedule nightly_binance"
    # the tick and the run are in the scratch Postgres database, not in some local SQLite file
    ticks = postgres_dagster_home.sql("SELECT count(*) FROM job_ticks WHERE status = 'SUCCESS'")
    assert ticks[0][0] >= 1
    stored = postgres_dagster_home.sql("SELECT status FROM runs WHERE run_id = %s", [run.run_id])
    assert stored == [("SUCCESS",)]
