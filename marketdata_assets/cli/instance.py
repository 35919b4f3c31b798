"""The Dagster instance of the terminal entry points (``marketdata backfill``, ``make demo``).

Those runs execute in-process (``execute_job``), outside any daemon, so two things the daemon would do
for a queued run are done here:

* **Instance creation is serialised across processes.** Opening a SQLite instance on a fresh
  ``DAGSTER_HOME`` creates its schema and stamps the alembic revision; two processes doing that at the
  same moment stamp it twice ("more than one head"), which breaks the instance for good.
  :func:`open_instance` takes an ``fcntl.flock`` on ``$DAGSTER_HOME/.marketdata-instance.lock`` around
  :meth:`DagsterInstance.get`, so the second process finds the schema complete.
* **Runs of a killed backfill are failed.** Every run the terminal backfill executes carries the PID,
  the process start time and the host of the process executing it (:func:`process_tags`). A ``kill -9``
  leaves such a run STARTED forever, and the gap sensor counts it as in flight for good.
  :func:`fail_orphaned_runs`, called on every start of ``marketdata backfill``, marks the runs of this
  host whose process no longer exists as failed, with the reason. Runs of other hosts are left alone
  (their processes cannot be seen from here); the daemon's run monitoring covers queued runs.
"""

from __future__ import annotations

import fcntl
import os
import socket
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dagster import DagsterInstance

INIT_LOCK_FILE = ".marketdata-instance.lock"
LAUNCHED_BY_TAG = "marketdata/launched_by"
TERMINAL_BACKFILL = "marketdata backfill"
PID_TAG = "marketdata/pid"
PID_STARTED_TAG = "marketdata/pid_started"
HOST_TAG = "marketdata/host"


@contextmanager
def instance_init_lock(home: str | os.PathLike[str] | None = None) -> Iterator[None]:
    """Exclusive ``flock`` on ``<DAGSTER_HOME>/.marketdata-instance.lock`` (held by one process at a time)."""
    home = home or os.environ.get("DAGSTER_HOME")
    if not home:
        yield
        return
    path = Path(home) / INIT_LOCK_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+b")  # noqa: SIM115 - closed below, after the lock is released
    except OSError as exc:
        warnings.warn(f"cannot lock {path} ({exc}); opening the Dagster instance unserialised", stacklevel=3)
        yield
        return
    with handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def open_instance() -> DagsterInstance:
    """``DagsterInstance.get()`` (storage created on first use) under :func:`instance_init_lock`."""
    from dagster import DagsterInstance

    with instance_init_lock():
        return DagsterInstance.get()


def process_started(pid: int) -> str | None:
    """When ``pid`` started (Linux: clock ticks since boot, from ``/proc``), None where unknown.

    Together with the PID it names one process: a PID reused by a later process has another start time.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()[19]  # field 22, after the "(comm)" that may hold spaces


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :].split()[0] in ("Z", "X")


def process_tags() -> dict[str, str]:
    """Run tags naming the process that executes the run: PID, its start time and the host."""
    pid = os.getpid()
    tags = {PID_TAG: str(pid), HOST_TAG: socket.gethostname()}
    started = process_started(pid)
    if started is not None:
        tags[PID_STARTED_TAG] = started
    return tags


def process_alive(pid: int, started: str | None = None) -> bool:
    """Whether the process ``pid`` (that started at ``started``, when given) still runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    if _is_zombie(pid):
        return False
    if started is not None:
        now = process_started(pid)
        if now is not None and now != started:
            return False  # the PID was reused by a later process
    return True


def fail_orphaned_runs(instance: DagsterInstance, host: str | None = None) -> list[str]:
    """Mark as failed the unfinished runs of ``marketdata backfill`` on this host whose process is gone.

    Returns the run ids marked. Runs without a PID tag (older runs, or launched elsewhere) are left alone.
    """
    from dagster import DagsterRunStatus, RunsFilter

    host = host or socket.gethostname()
    records = instance.get_run_records(
        filters=RunsFilter(
            statuses=[DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED],
            tags={LAUNCHED_BY_TAG: TERMINAL_BACKFILL},
        )
    )
    failed = []
    for record in records:
        run = record.dagster_run
        tags = run.tags
        if tags.get(HOST_TAG) != host or not tags.get(PID_TAG, "").isdigit():
            continue
        pid = int(tags[PID_TAG])
        if process_alive(pid, tags.get(PID_STARTED_TAG)):
            continue
        message = (
            f"The process that executed this run ({TERMINAL_BACKFILL}, pid {pid} on {host}) no longer "
            "exists: it was killed or crashed before the run finished. Marked failed by a later "
            f"{TERMINAL_BACKFILL}."
        )
        # DagsterInstance.report_run_failed is not decorated @public in Dagster 1.13, but there is no
        # public API that fails a run from outside its process; Dagster's own run monitoring daemon uses
        # exactly this call. test_instance.py::test_report_run_failed_still_fails_a_started_run pins it.
        instance.report_run_failed(run, message)
        failed.append(run.run_id)
    return failed
