"""``kill -9`` of a terminal backfill mid-run: its venue workers exit with it, and the next
``marketdata backfill`` marks the runs it left STARTED as failed, with the reason, so the gap sensor no
longer counts them as in flight."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, EventRecordsFilter, RunsFilter

from marketdata_assets.cli.instance import (
    HOST_TAG,
    LAUNCHED_BY_TAG,
    PID_TAG,
    TERMINAL_BACKFILL,
    process_alive,
)
from marketdata_assets_tests.test_cli_e2e import write_config

pytestmark = pytest.mark.e2e

WAIT_S = 90


def _env(home: Path, config: Path) -> dict[str, str]:
    env = {**os.environ, "DAGSTER_HOME": str(home), "MARKETDATA_CONFIG": str(config)}
    env.pop("MARKETDATA_ROOT", None)
    return env


CMD = [sys.executable, "-m", "marketdata_assets.cli", "backfill", "--raw-only"]
CMD += ["--start", "2024-03-05", "--end", "2024-03-05"]


def _started_runs(instance: DagsterInstance) -> list:
    return [
        r.dagster_run
        for r in instance.get_run_records(
            filters=RunsFilter(statuses=[DagsterRunStatus.STARTED], tags={LAUNCHED_BY_TAG: TERMINAL_BACKFILL})
        )
    ]


def test_a_killed_backfill_leaves_no_workers_and_its_runs_are_failed_by_the_next_one(
    tmp_path: Path, make_simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from marketdata_assets.settings import PROJECT_DIR

    sim = make_simulator(seed=3)
    sim.add_fault("*:slow:delay=60,endpoint=ohlcv")  # every candle request hangs: the runs stay in flight
    config = write_config(tmp_path, sim.url)  # binance + okx: one worker process per venue
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((PROJECT_DIR / "dagster_home" / "dagster.yaml").read_text())
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    log = (tmp_path / "first.log").open("w")
    first = subprocess.Popen(CMD, env=_env(home, config), stdout=log, stderr=subprocess.STDOUT)

    deadline = time.monotonic() + WAIT_S
    with DagsterInstance.get() as instance:
        runs: list = []
        while time.monotonic() < deadline and len(runs) < 2:
            assert first.poll() is None, (tmp_path / "first.log").read_text()
            time.sleep(0.5)
            runs = _started_runs(instance)
        assert len(runs) == 2, (tmp_path / "first.log").read_text()
        workers = {int(run.tags[PID_TAG]) for run in runs}
        assert len(workers) == 2 and first.pid not in workers  # each venue's run executes in its worker
        assert all(process_alive(pid) for pid in workers)

        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        gone_by = time.monotonic() + 5
        while time.monotonic() < gone_by and any(process_alive(pid) for pid in workers):
            time.sleep(0.1)
        assert not [pid for pid in workers if process_alive(pid)], "workers outlived the killed backfill"
        # nothing else touched the runs: they are still STARTED, as the gap sensor would see them
        assert {r.run_id for r in _started_runs(instance)} == {r.run_id for r in runs}

        sim.clear_faults()
        second = subprocess.run(CMD, env=_env(home, config), capture_output=True, text=True, timeout=300)
        output = second.stdout + second.stderr
        assert second.returncode == 0, output
        assert "Marked 2 run(s) of an earlier backfill whose process is gone as failed" in output

        for run in runs:
            assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE
            assert run.tags[HOST_TAG]
        failures = instance.get_event_records(EventRecordsFilter(event_type=DagsterEventType.RUN_FAILURE))
        reasons = {r.run_id: r.event_log_entry.dagster_event.message for r in failures}
        for run in runs:
            assert f"pid {run.tags[PID_TAG]}" in reasons[run.run_id]
            assert "no longer exists" in reasons[run.run_id]
        assert _started_runs(instance) == []
