"""The instance of the terminal entry points: failing runs of a killed backfill, and serialised creation."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, EventRecordsFilter
from dagster._core.test_utils import create_run_for_test

from marketdata_assets.cli.instance import (
    HOST_TAG,
    LAUNCHED_BY_TAG,
    PID_STARTED_TAG,
    PID_TAG,
    TERMINAL_BACKFILL,
    fail_orphaned_runs,
    process_alive,
    process_started,
    process_tags,
)
from marketdata_assets.settings import PROJECT_DIR


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def failure_messages(instance: DagsterInstance, run_id: str) -> list[str]:
    records = instance.get_event_records(
        EventRecordsFilter(event_type=DagsterEventType.RUN_FAILURE), limit=100
    )
    return [r.event_log_entry.dagster_event.message for r in records if r.run_id == run_id]


def test_process_tags_name_this_process() -> None:
    tags = process_tags()
    assert tags[PID_TAG] == str(os.getpid()) and tags[HOST_TAG] == socket.gethostname()
    assert process_alive(os.getpid(), tags.get(PID_STARTED_TAG))
    assert not process_alive(_dead_pid())
    if process_started(os.getpid()) is not None:  # Linux: a reused PID is another process
        assert not process_alive(os.getpid(), "1")


def test_report_run_failed_still_fails_a_started_run(tmp_path: Path) -> None:
    """Pins the one non-@public Dagster call we rely on (DagsterInstance.report_run_failed)."""
    with DagsterInstance.local_temp(str(tmp_path)) as instance:
        run = create_run_for_test(instance, status=DagsterRunStatus.STARTED)
        instance.report_run_failed(run, "gone")
        assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE
        assert failure_messages(instance, run.run_id) == ["gone"]


def test_runs_of_a_gone_backfill_process_on_this_host_are_failed_with_the_reason(tmp_path: Path) -> None:
    host = socket.gethostname()
    me = process_tags()
    dead = _dead_pid()
    base = {LAUNCHED_BY_TAG: TERMINAL_BACKFILL}
    with DagsterInstance.local_temp(str(tmp_path)) as instance:

        def run(status: DagsterRunStatus, **tags: str) -> str:
            return create_run_for_test(instance, status=status, tags={**base, **tags}).run_id

        orphan = run(DagsterRunStatus.STARTED, **{PID_TAG: str(dead), HOST_TAG: host})
        orphan_not_started = run(DagsterRunStatus.NOT_STARTED, **{PID_TAG: str(dead), HOST_TAG: host})
        reused_pid = run(DagsterRunStatus.STARTED, **{**me, PID_STARTED_TAG: "1"})
        alive = run(DagsterRunStatus.STARTED, **me)
        other_host = run(DagsterRunStatus.STARTED, **{PID_TAG: str(dead), HOST_TAG: "elsewhere"})
        no_pid = run(DagsterRunStatus.STARTED)
        finished = run(DagsterRunStatus.SUCCESS, **{PID_TAG: str(dead), HOST_TAG: host})
        queued_by_ui = create_run_for_test(
            instance, status=DagsterRunStatus.STARTED, tags={PID_TAG: str(dead), HOST_TAG: host}
        ).run_id

        expected = {orphan, orphan_not_started}
        if process_started(os.getpid()) is not None:
            expected.add(reused_pid)
        assert set(fail_orphaned_runs(instance)) == expected
        for run_id in expected:
            assert instance.get_run_by_id(run_id).status == DagsterRunStatus.FAILURE
            [message] = failure_messages(instance, run_id)
            assert "no longer exists" in message and TERMINAL_BACKFILL in message
        for run_id in (alive, other_host, no_pid, queued_by_ui):
            assert instance.get_run_by_id(run_id).status == DagsterRunStatus.STARTED
        assert instance.get_run_by_id(finished).status == DagsterRunStatus.SUCCESS
        assert fail_orphaned_runs(instance) == []  # once


OPEN_AT = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from marketdata_assets.cli.instance import open_instance
    homes, ready, n, step = sys.argv[1].split(","), Path(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    (ready / str(os.getpid())).touch()  # imported: wait for the others
    while len(list(ready.iterdir())) < n:
        time.sleep(0.01)
    t0 = max(p.stat().st_mtime for p in ready.iterdir()) + 0.3
    failures = 0
    for i, home in enumerate(homes):
        os.environ["DAGSTER_HOME"] = home
        time.sleep(max(0.0, t0 + i * step - time.time()))  # every process opens home i at the same instant
        try:
            instance = open_instance()
            instance.get_run_records(limit=1)
            instance.dispose()
        except Exception as exc:
            failures += 1
            print(f"{home}: {type(exc).__name__}: {exc}", file=sys.stderr)
    sys.exit(1 if failures else 0)
    """
)


@pytest.mark.e2e
def test_processes_opening_a_fresh_instance_at_the_same_moment_all_succeed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes open each of six fresh SQLite DAGSTER_HOMEs at the same instant, as two `marketdata
    backfill` started together do; unserialised, about one home in four ends up with two alembic heads."""
    homes = []
    for i in range(6):
        home = tmp_path / f"home{i}"
        home.mkdir()
        shutil.copyfile(PROJECT_DIR / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
        homes.append(str(home))
    ready = tmp_path / "ready"
    ready.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_AT, ",".join(homes), str(ready), "2", "0.8"],
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(errors)
    for home in homes:  # and every instance is usable afterwards
        monkeypatch.setenv("DAGSTER_HOME", home)
        with DagsterInstance.get() as instance:
            instance.get_run_records(limit=1)


@pytest.mark.parametrize("yaml_path", ["dagster_home/dagster.yaml", "dagster_home/team/dagster.yaml"])
def test_both_instances_enable_run_monitoring_without_resume(
    yaml_path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml
    from dagster._core.instance.config import dagster_instance_config

    shutil.copyfile(PROJECT_DIR / yaml_path, tmp_path / "dagster.yaml")
    for name in (
        "DAGSTER_PG_HOST",
        "DAGSTER_PG_PORT",
        "DAGSTER_PG_USER",
        "DAGSTER_PG_PASSWORD",
        "DAGSTER_PG_DB",
    ):
        monkeypatch.setenv(name, "5432" if name.endswith("PORT") else "x")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    config, _ = dagster_instance_config(str(tmp_path))  # validates against Dagster's schema
    monitoring = config["run_monitoring"]
    assert monitoring["enabled"] is True
    assert monitoring["max_resume_run_attempts"] == 0
    assert 60 <= monitoring["start_timeout_seconds"] <= 600
    assert 0 < monitoring["poll_interval_seconds"] <= 120
    assert yaml.safe_load((PROJECT_DIR / yaml_path).read_text())["run_monitoring"] == monitoring
    if "team" not in yaml_path:
        with DagsterInstance.get() as instance:  # the embedded instance loads with it
            assert instance.run_monitoring_enabled
            assert instance.run_monitoring_start_timeout_seconds == monitoring["start_timeout_seconds"]
