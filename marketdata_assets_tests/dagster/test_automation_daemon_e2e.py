"""The done-when of the automation: ``dagster-daemon run`` over an embedded (SQLite) instance heals a day
without any manual step. A day was served with an outage gap; the venue has since filled it; the gap
sensor finds the outage, requests the day, the daemon dequeues and runs it, and the day is valid."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from dagster import AssetKey, DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from marketdata_assets.definitions import build_definitions
from marketdata_assets.settings import PROJECT_DIR, load_settings
from marketdata_assets.storage.root import StorageRoot
from marketdata_assets.storage.served import read_gaps, read_served_candles

pytestmark = pytest.mark.e2e

WAIT_S = 120
BIN = Path(sys.executable).parent


def _settings_text(sim_url: str, data: Path, day: str) -> str:
    return textwrap.dedent(
        f"""
        environment: automation-e2e
        synthetic: true
        storage:
          root: {data}
        venues:
          binance:
            symbols: [BTC/USDT]
            start_date: {day}
            base_url: {sim_url}/binance
            rate_limit_ms: 5
            max_retries: 1
        automation:
          running: true
          sensor_interval_s: 1
          nightly_grace_minutes: 0
          retry_base_minutes: 0.05
          max_tries: 4
        """
    )


def _outage_days(root: StorageRoot, day) -> set:  # noqa: ANN001
    start = pd.Timestamp(day, tz="UTC")
    gaps = read_gaps(root, "binance", "BTCUSDT", start, start + pd.Timedelta(days=1))
    return set(gaps.loc[gaps["kind"] == "outage", "start"])


def test_the_daemon_refetches_a_healed_outage_day_without_any_manual_step(
    tmp_path: Path, simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    day = (datetime.now(UTC) - timedelta(days=1)).date()
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_DIR / "dagster_home" / "dagster.yaml", home / "dagster.yaml")  # QueuedRunCoordinator
    config = tmp_path / "settings.yaml"
    config.write_text(_settings_text(simulator.url, tmp_path / "data", day.isoformat()))
    module = tmp_path / "automation_defs.py"
    module.write_text(
        "from marketdata_assets.definitions import build_definitions\n"
        "from marketdata_assets.settings import load_settings\n"
        f"defs = build_definitions(load_settings({str(config)!r}))\n"
    )
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        f"load_from:\n  - python_file:\n      relative_path: {module.name}\n      working_directory: {tmp_path}\n"
    )
    settings = load_settings(config, environ={})
    root = StorageRoot.from_uri(settings.storage_root)
    partition = f"{day.isoformat()}|BTCUSDT"

    # 1. the day is served while the venue has a 2-hour hole in BTC/USDT
    outage = simulator.add_fault(
        f"binance:outage:symbol=BTC/USDT,start={day.isoformat()}T03:00,end={day.isoformat()}T05:00"
    )
    monkeypatch.setenv("DAGSTER_HOME", str(home))  # the yaml's storage reads it
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    instance = DagsterInstance.from_config(str(home))
    try:
        defs = build_definitions(settings)
        tags = {ASSET_PARTITION_RANGE_START_TAG: partition, ASSET_PARTITION_RANGE_END_TAG: partition}
        assert (
            defs.resolve_job_def("refresh_binance").execute_in_process(instance=instance, tags=tags).success
        )
        assert _outage_days(root, day), "the outage should be in the gap table"
        assert len(read_served_candles(root, "1m", "binance", "BTCUSDT")) == 1440 - 120

        # 2. the venue fills the hole; nobody clicks anything
        assert simulator.remove_fault(outage.id)

        log = (tmp_path / "daemon.log").open("w")
        daemon = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            sensor_runs = _wait_for_sensor_run(instance, daemon, tmp_path / "daemon.log")
        finally:
            _stop(daemon)
            log.close()

        # 3. the day is valid: no outage left, 1440 served minutes, every asset of the chain materialised
        assert not _outage_days(root, day)
        assert len(read_served_candles(root, "1m", "binance", "BTCUSDT")) == 1440
        assert len(read_served_candles(root, "1d", "binance", "BTCUSDT")) == 1
        [run] = sensor_runs  # requested once: while it ran, the sensor did not request the day again
        assert run.tags[ASSET_PARTITION_RANGE_START_TAG] == partition
        assert run.tags["marketdata/reasons"] == "outage=1"
        raw = instance.fetch_materializations(AssetKey(["binance", "ohlcv_1m_raw"]), limit=1).records[0]
        assert raw.run_id == run.run_id and raw.asset_materialization.metadata["missing_minutes"].value == 0
    finally:
        instance.dispose()


def _sensor_runs(instance: DagsterInstance) -> list:
    return list(instance.get_runs(filters=RunsFilter(tags={"marketdata/launched_by": "sensor gap_backfill"})))


def _wait_for_sensor_run(instance: DagsterInstance, daemon: subprocess.Popen, log: Path) -> list:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        runs = _sensor_runs(instance)
        done = [r for r in runs if r.status == DagsterRunStatus.SUCCESS]
        failed = [r for r in runs if r.status == DagsterRunStatus.FAILURE]
        if failed:
            pytest.fail(
                f"the gap backfill run {failed[0].run_id} failed; daemon log:\n{log.read_text()[-4000:]}"
            )
        if done:
            time.sleep(3)  # a few more sensor ticks: the healed day must not be requested again
            return _sensor_runs(instance)
        if daemon.poll() is not None:
            pytest.fail(f"dagster-daemon exited with {daemon.returncode}:\n{log.read_text()[-4000:]}")
        time.sleep(1)
    pytest.fail(
        f"no successful gap backfill run within {WAIT_S} s (runs: {[(r.run_id, r.status) for r in _sensor_runs(instance)]}); "
        f"daemon log:\n{log.read_text()[-4000:]}"
    )


def _stop(process: subprocess.Popen) -> None:
    """Stop the daemon and everything it started (its code server, run workers): its process group."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # leftovers of the group (a run worker mid-exit)
