"""Backfills from the terminal: plan the runs for a date range x symbols, execute them through Dagster.

The runs are real Dagster runs of the code location's implicit asset job, recorded in the configured
instance (``DAGSTER_HOME``), so they appear in the UI exactly like runs launched there. Planning
cuts the range the way the assets' backfill policy cuts a UI backfill (``BackfillPolicy.multi_run``, at
most ``MAX_DAYS_PER_RUN`` partitions per run): runs of at most 31 days per venue x symbol (DVOL: x
currency), month by month across the symbols.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from marketdata_assets.frames import symbol_key
from marketdata_assets.pipeline.ingest import PartitionOutcome
from marketdata_assets.settings import LoadedSettings
from marketdata_assets.universe import (
    DVOL_VENUE,
    MAX_DAYS_PER_RUN,
    PARTITION_RANGE_END_TAG,
    PARTITION_RANGE_START_TAG,
    latest_closed_day,
    partition_key,
    run_tags,
)

JOB_RECONSTRUCTOR_MODULE = "marketdata_assets.cli.backfill"


LAYERS = ("served", "raw")


class BackfillError(ValueError):
    """A backfill request that cannot be planned (unknown venue/symbol, dates outside the partitions)."""


@dataclass(frozen=True)
class PlannedRun:
    """One Dagster run: an asset over a date range for one symbol (or DVOL currency)."""

    venue: str
    asset_path: tuple[str, ...]
    instrument: str  # unified symbol or currency
    start: date
    end: date  # inclusive
    downstream: tuple[tuple[str, ...], ...] = ()  # assets computed from asset_path in the same run

    @property
    def asset_paths(self) -> list[tuple[str, ...]]:
        return [self.asset_path, *self.downstream]

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def range_tags(self) -> dict[str, str]:
        key = symbol_key(self.instrument)
        return {
            PARTITION_RANGE_START_TAG: partition_key(self.venue, key, self.start),
            PARTITION_RANGE_END_TAG: partition_key(self.venue, key, self.end),
            "marketdata/launched_by": "marketdata backfill",
            **run_tags(self.venue, [key], self.start, self.end, "marketdata backfill"),
        }


@dataclass
class RunResult:
    run: PlannedRun
    run_id: str | None
    success: bool
    error: str | None = None
    outcomes: list[PartitionOutcome] = field(default_factory=list)
    # days fetched fine but failed downstream (e.g. held back from resampling by a check): day -> why
    held_back: dict[date, str] = field(default_factory=dict)


_FAILED_PARTITION_RE = re.compile(r"^- (\d{4}-\d{2}-\d{2}) \S+: (.+)$", re.M)


def held_back_days(failure_descriptions: Sequence[str]) -> dict[date, str]:
    """Days named by the steps' failure listings (``- 2024-03-05 BTCUSDT: why``, see ``assets.common``)."""
    days: dict[date, str] = {}
    for text in failure_descriptions:
        for day, why in _FAILED_PARTITION_RE.findall(text or ""):
            days.setdefault(date.fromisoformat(day), why.strip())
    return days


def mark_held_back(outcomes: list[PartitionOutcome], held_back: dict[date, str]) -> list[PartitionOutcome]:
    """Fetched partitions whose day failed downstream count as failed, with the downstream reason."""
    for outcome in outcomes:
        if outcome.ok and outcome.day in held_back:
            outcome.ok, outcome.error = False, held_back[outcome.day]
    return outcomes


def step_error_message(error) -> str:  # noqa: ANN001 - SerializableErrorInfo
    """The message of a failed step, from the underlying cause rather than Dagster's wrapper.

    User code that raises (an ``OSError`` on a bad root, say) reaches the event log as a
    ``DagsterExecutionStepExecutionError`` whose ``cause`` is the real exception; show that one.
    """
    while error.cause is not None and error.cls_name and error.cls_name.startswith("Dagster"):
        error = error.cause
    message = error.message.strip()
    if error.cls_name:  # "dagster._core.definitions.events.Failure: ..." -> "...", "OSError: ..." kept
        message = re.sub(rf"^(?:[\w.]+\.)?{re.escape(error.cls_name)}: ", "", message)
        if error.cls_name != "Failure":
            message = f"{error.cls_name}: {message}"
    return message


def plan_backfill(
    settings: LoadedSettings,
    *,
    venues: Sequence[str] | None = None,
    symbols: Sequence[str] | None = None,
    start: date | None = None,
    end: date | None = None,
    now: datetime | None = None,
    layers: str = "served",
    max_days_per_run: int = MAX_DAYS_PER_RUN,
) -> list[PlannedRun]:
    """The runs for ``venues`` x ``symbols`` x ``[start, end]`` (all configured ones by default).

    ``layers="served"`` (default): each run fetches the raw days and computes everything downstream
    (validated 1m, gaps, 5m..1d; DVOL 1m/1h) with their checks. ``"raw"``: fetch only.

    A range longer than ``max_days_per_run`` is split into consecutive runs of at most that many days
    (Dagster's advice: tens of partitions per run), ordered chunk by chunk across the instruments: a
    run of years starts fetching at once and shows progress, instead of planning every partition of
    one giant run first.
    """
    if max_days_per_run < 1:
        raise BackfillError(f"max_days_per_run must be at least 1, got {max_days_per_run}")
    from marketdata_assets.defs.dvol import DVOL_TIMEFRAMES, dvol_key
    from marketdata_assets.defs.raw import DVOL_RAW_KEY, raw_candles_key
    from marketdata_assets.defs.resampled import resampled_key
    from marketdata_assets.defs.validated import gaps_key, validated_candles_key
    from marketdata_assets.transform.resample import TIMEFRAMES

    if layers not in LAYERS:
        raise BackfillError(f"unknown layers {layers!r}; expected one of {', '.join(LAYERS)}")

    latest = latest_closed_day(now)
    end = end or latest
    start = start or end
    if start > end:
        raise BackfillError(f"--start {start} is after --end {end}")
    if end > latest:
        raise BackfillError(f"--end {end} is not a closed UTC day yet; the latest closed day is {latest}")

    known = [*settings.venues, *([DVOL_VENUE] if settings.dvol else [])]
    if venues is not None and not venues:
        raise BackfillError("no venue given (omit --venue for all)")
    if symbols is not None and not symbols:
        raise BackfillError("no symbol given (omit --symbols for all)")
    chosen = list(dict.fromkeys(venues)) if venues else known  # a venue named twice runs once
    unknown = [v for v in chosen if v not in known]
    if unknown:
        raise BackfillError(f"unknown venue {', '.join(unknown)}; configured: {', '.join(known)}")

    wanted = {symbol_key(s) for s in symbols} if symbols else None
    matched: set[str] = set()
    runs: list[PlannedRun] = []
    for venue in chosen:
        if venue == DVOL_VENUE:
            assert settings.dvol is not None
            first_day, instruments, path = (
                settings.dvol.start_date,
                list(settings.dvol.currencies),
                DVOL_RAW_KEY.path,
            )
            if wanted is not None and venues is None:
                instruments = []  # a symbol filter selects candle symbols; DVOL only when asked by venue
        else:
            cfg = settings.venues[venue]
            first_day, instruments, path = cfg.start_date, list(cfg.symbols), raw_candles_key(venue).path
            if wanted is not None:
                instruments = [s for s in instruments if symbol_key(s) in wanted]
                matched |= {symbol_key(s) for s in instruments}
        if start < first_day and instruments:
            raise BackfillError(
                f"{venue} partitions start on {first_day} (start_date in {settings.path}); got --start {start}"
            )
        downstream: tuple[tuple[str, ...], ...] = ()
        if layers == "served" and venue == DVOL_VENUE:
            downstream = tuple(tuple(dvol_key(tf).path) for tf in DVOL_TIMEFRAMES)
        elif layers == "served":
            keys = [validated_candles_key(venue), gaps_key(venue)]
            keys += [resampled_key(venue, tf) for tf in TIMEFRAMES]
            downstream = tuple(tuple(k.path) for k in keys)
        runs += [
            PlannedRun(venue, tuple(path), inst, first, last, downstream)
            for first, last in day_chunks(start, end, max_days_per_run)
            for inst in instruments
        ]
    if wanted is not None and wanted - matched:
        configured = sorted({s for v in settings.venues.values() for s in v.symbols})
        typed = [repr(s) for s in symbols or () if symbol_key(s) not in matched]  # as the user wrote them
        raise BackfillError(
            f"symbol {', '.join(typed)} is not configured for {', '.join(chosen)}; "
            f"configured: {', '.join(configured)}"
        )
    if not runs:
        raise BackfillError("nothing to backfill for that selection")
    return runs


def day_chunks(start: date, end: date, days: int) -> list[tuple[date, date]]:
    """``[start, end]`` (inclusive) as consecutive ranges of at most ``days`` days."""
    chunks = []
    first = start
    while first <= end:
        last = min(end, first + timedelta(days=days - 1))
        chunks.append((first, last))
        first = last + timedelta(days=1)
    return chunks


def execute_runs(
    runs: Sequence[PlannedRun],
    *,
    instance=None,  # noqa: ANN001 - DagsterInstance; the configured one by default
    on_partition: Callable[[PartitionOutcome], None] | None = None,
    parallel_venues: bool = True,
) -> list[RunResult]:
    """Execute the planned runs; one venue's runs in order, venues in parallel worker processes.

    Parallel venues need separate processes: Dagster reconfigures ``logging`` while it creates a
    run's log manager, which deadlocks against a run logging in another thread (measured).
    """
    venues = list(dict.fromkeys(run.venue for run in runs))
    if parallel_venues and len(venues) > 1 and instance is None:
        return _execute_in_workers(runs, venues, on_partition)
    return _execute_here(runs, instance, on_partition)


def _execute_here(runs: Sequence[PlannedRun], instance, on_partition) -> list[RunResult]:  # noqa: ANN001
    from marketdata_assets.cli.instance import open_instance
    from marketdata_assets.pipeline import progress

    instance = instance or open_instance()
    results: list[RunResult] = []
    for planned in runs:
        collected: list[PartitionOutcome] = []

        def listener(outcome: PartitionOutcome, collected: list[PartitionOutcome] = collected) -> None:
            collected.append(outcome)
            if on_partition is not None:
                on_partition(outcome)

        with progress.listening(listener):
            result = _execute_one(planned, instance)
        result.outcomes = mark_held_back(collected, result.held_back)
        results.append(result)
    return results


_WIRE_PREFIX = "@@marketdata@@ "


def _execute_in_workers(runs, venues, on_partition) -> list[RunResult]:  # noqa: ANN001
    """One ``python -m marketdata_assets.cli.backfill`` worker per venue; progress comes back as JSON lines."""
    from marketdata_assets.cli.instance import open_instance

    # Open the instance once first (under the instance lock): on a fresh DAGSTER_HOME that creates the
    # SQLite schema, which several workers creating at the same moment would race on.
    open_instance().dispose()
    procs = {}
    for venue in venues:
        payload = json.dumps([_run_to_json(r) for r in runs if r.venue == venue])
        procs[venue] = subprocess.Popen(
            [sys.executable, "-m", "marketdata_assets.cli.backfill", payload, str(os.getpid())],
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
    results: dict[str, list[RunResult]] = {venue: [] for venue in venues}
    lock = threading.Lock()

    def pump(venue: str) -> None:
        proc = procs[venue]
        assert proc.stdout is not None
        for line in proc.stdout:
            if not line.startswith(_WIRE_PREFIX):
                sys.stdout.write(line)
                continue
            message = json.loads(line[len(_WIRE_PREFIX) :])
            if "outcome" in message and on_partition is not None:
                with lock:
                    on_partition(_outcome_from_json(message["outcome"]))
            elif "result" in message:
                results[venue].append(_result_from_json(message["result"]))
        proc.wait()

    threads = [threading.Thread(target=pump, args=(v,), daemon=True) for v in venues]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ordered: list[RunResult] = []
    for venue in venues:
        planned = [r for r in runs if r.venue == venue]
        done = results[venue]
        ordered += done
        code = procs[venue].returncode
        for missing in planned[len(done) :]:  # a worker that died before reporting these runs
            ordered.append(
                RunResult(missing, None, False, f"backfill worker for {venue} exited with status {code}")
            )
    return ordered


def quiet_dagster_warnings() -> None:
    """Beta/preview warnings about our own definitions are for developers, not backfill users."""
    import warnings

    from dagster import BetaWarning, PreviewWarning

    warnings.filterwarnings("ignore", category=BetaWarning)
    warnings.filterwarnings("ignore", category=PreviewWarning)


def exit_with_parent(parent: int) -> None:
    """End this process as soon as ``parent`` dies (a killed ``marketdata backfill`` leaves no workers).

    Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, the kernel kills us the moment the parent exits. Everywhere
    (and in case the parent died before the prctl): a daemon thread that exits when we are reparented.
    """
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:
        os._exit(EXIT_PARENT_GONE)

    def watch() -> None:
        while True:
            time.sleep(PARENT_POLL_S)
            if os.getppid() != parent:
                os._exit(EXIT_PARENT_GONE)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


PR_SET_PDEATHSIG = 1
PARENT_POLL_S = 0.5
EXIT_PARENT_GONE = 3


def _worker(payload: str, parent: int | None = None) -> int:
    if parent is not None:
        exit_with_parent(parent)
    quiet_dagster_warnings()
    runs = [_run_from_json(item) for item in json.loads(payload)]

    def emit(message: dict) -> None:
        sys.stdout.write(_WIRE_PREFIX + json.dumps(message, default=str) + "\n")
        sys.stdout.flush()

    for result in _execute_here(runs, None, lambda outcome: emit({"outcome": outcome.as_row()})):
        emit({"result": _result_to_json(result)})
    return 0


def _run_to_json(run: PlannedRun) -> dict:
    return {**dataclasses.asdict(run), "start": run.start.isoformat(), "end": run.end.isoformat()}


def _run_from_json(data: dict) -> PlannedRun:
    return PlannedRun(
        data["venue"],
        tuple(data["asset_path"]),
        data["instrument"],
        date.fromisoformat(data["start"]),
        date.fromisoformat(data["end"]),
        tuple(tuple(path) for path in data.get("downstream", ())),
    )


def _outcome_from_json(row: dict) -> PartitionOutcome:
    row = dict(row)
    row["day"] = date.fromisoformat(row["day"])
    row["missing_ranges"] = [r for r in row.get("missing_ranges", "").split(", ") if r]
    return PartitionOutcome(**row)


def _result_to_json(result: RunResult) -> dict:
    return {
        "run": _run_to_json(result.run),
        "run_id": result.run_id,
        "success": result.success,
        "error": result.error,
        "outcomes": [o.as_row() for o in result.outcomes],
    }


def _result_from_json(data: dict) -> RunResult:
    return RunResult(
        _run_from_json(data["run"]),
        data["run_id"],
        data["success"],
        data["error"],
        [_outcome_from_json(o) for o in data["outcomes"]],
    )


def job_named(name: str):  # noqa: ANN201 - JobDefinition
    """The code location's job ``name`` (the reconstructor of the runs below: a run process rebuilds the
    job by calling this function with the same argument, through Dagster's public
    ``build_reconstructable_job``)."""
    from marketdata_assets.definitions import defs

    return defs.resolve_job_def(name)


def _reconstructable_job(name: str) -> Any:  # noqa: ANN401 - ReconstructableJob
    from dagster import build_reconstructable_job

    return build_reconstructable_job(
        JOB_RECONSTRUCTOR_MODULE, job_named.__name__, reconstructable_args=(name,)
    )


def _execute_one(planned: PlannedRun, instance) -> RunResult:  # noqa: ANN001
    from dagster import AssetKey, execute_job

    from marketdata_assets.cli.instance import process_tags
    from marketdata_assets.defs.automation import refresh_job_name

    keys = [AssetKey(list(path)) for path in planned.asset_paths]
    try:
        result = execute_job(
            job=_reconstructable_job(refresh_job_name(planned.venue)),  # the venue's named job
            instance=instance,
            asset_selection=keys,  # with their asset checks
            # which process executes the run: a later backfill fails the run if that process is gone
            tags={**planned.range_tags(), **process_tags()},
            # The terminal shows our progress bar; the full event log still goes to the instance (UI).
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            raise_on_error=False,
        )
    except Exception as exc:  # noqa: BLE001 - a run that cannot start is reported like a failed one
        return RunResult(planned, None, False, f"{type(exc).__name__}: {exc}")
    error, held_back = None, {}
    if not result.success:
        failures = [e.step_failure_data for e in result.all_events if e.is_step_failure]
        error = step_error_message(failures[0].error) if failures else "run failed"
        held_back = held_back_days(
            [f.user_failure_data.description for f in failures if f.user_failure_data is not None]
        )
    return RunResult(planned, result.run_id, result.success, error, held_back=held_back)


def refresh_instruments(venues: Sequence[str], instance=None) -> RunResult | None:  # noqa: ANN001
    """Materialise ``<venue>/instruments`` (reference data) of the candle ``venues`` in one run; None when
    there is none (a DVOL-only backfill)."""
    from dagster import execute_job

    from marketdata_assets.cli.instance import open_instance, process_tags
    from marketdata_assets.defs.automation import INSTRUMENTS_JOB
    from marketdata_assets.defs.reference import instruments_key
    from marketdata_assets.universe import CANDLE_VENUES

    keys = [instruments_key(venue) for venue in dict.fromkeys(venues) if venue in CANDLE_VENUES]
    if not keys:
        return None

    planned = PlannedRun("reference", ("instruments",), "-", date.today(), date.today())
    result = execute_job(
        job=_reconstructable_job(INSTRUMENTS_JOB),
        instance=instance or open_instance(),
        asset_selection=keys,
        tags={"marketdata/launched_by": "marketdata backfill", **process_tags()},
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        raise_on_error=False,
    )
    error = None
    if not result.success:
        failures = [e.step_failure_data for e in result.all_events if e.is_step_failure]
        error = step_error_message(failures[0].error) if failures else "instruments run failed"
    return RunResult(planned, result.run_id, result.success, error)


def refresh_catalog(instance=None) -> RunResult | None:  # noqa: ANN001 - DagsterInstance
    """Materialise ``serving/catalog`` (compaction + inventory) in one run; None if not defined."""
    from dagster import execute_job

    from marketdata_assets.cli.instance import open_instance, process_tags
    from marketdata_assets.defs.automation import CATALOG_JOB
    from marketdata_assets.defs.catalog import CATALOG_KEY

    recon_job = _reconstructable_job(CATALOG_JOB)
    planned = PlannedRun("catalog", tuple(CATALOG_KEY.path), "-", date.today(), date.today())
    result = execute_job(
        job=recon_job,
        instance=instance or open_instance(),
        asset_selection=[CATALOG_KEY],
        tags={"marketdata/launched_by": "marketdata backfill", **process_tags()},
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        raise_on_error=False,
    )
    error = None if result.success else "catalog run failed; see the run in the UI"
    return RunResult(planned, result.run_id, result.success, error)


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else None))
