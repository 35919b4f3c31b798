"""Automation: nightly schedules, the gap backfill sensor and the catalog refresh sensor.

* ``refresh_<venue>`` jobs (``define_asset_job``): one venue's assets raw through served with their
  checks (``refresh_deribit``: DVOL raw -> 1m/1h). Each run covers a rectangle of days x instruments
  through the partition range tags (a multi-partition range selects every date *and* symbol between its
  ends), and each asset's body processes the whole range in that one run.
* ``nightly_<venue>`` schedules (``automation.nightly_cron``, UTC): yesterday, every instrument of the
  venue, one run per venue.
* ``gap_backfill`` sensor: finds days that are missing, failed, or validated with an outage gap
  (within ``automation.lookback_days``), skips those queued or running, and requests the rest in
  batched runs with per-day exponential backoff, giving up after ``automation.max_tries`` (an
  observation "still missing after N tries" on the raw partition). Its cursor holds the tries (JSON).
* ``catalog_refresh`` sensor: materialises ``serving/catalog`` once the served layer changed and no
  refresh run is in flight (so after the nightly runs and after backfills, once).

The decisions (which days, how batched, when to retry) are in :mod:`marketdata_assets.pipeline.plan`;
this module reads the instance and the gap table and turns the plan into run requests.
"""

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dagster import (
    AssetKey,
    AssetObservation,
    AssetSelection,
    DagsterRunStatus,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    MetadataValue,
    PartitionKeyRange,
    RunRequest,
    RunsFilter,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    schedule,
    sensor,
)

from marketdata_assets.defs.catalog import CATALOG_KEY, served_keys
from marketdata_assets.defs.dvol import DVOL_TIMEFRAMES, dvol_key
from marketdata_assets.defs.partitions import (
    PARTITION_NAME_TAG,
    PARTITION_RANGE_END_TAG,
    PARTITION_RANGE_START_TAG,
    candle_partitions,
    dvol_partitions,
)
from marketdata_assets.defs.raw import DVOL_RAW_KEY, raw_candles_key
from marketdata_assets.defs.reference import instruments_key
from marketdata_assets.defs.resampled import resampled_key
from marketdata_assets.defs.resources import StorageResource
from marketdata_assets.defs.validated import gaps_key, validated_candles_key
from marketdata_assets.pipeline.plan import (
    Backoff,
    Batch,
    Day,
    GapPolicy,
    Reason,
    ScanWindow,
    Series,
    nightly_batch,
    plan_gap_backfill,
    scan_window,
)
from marketdata_assets.settings import LoadedSettings
from marketdata_assets.storage.root import StorageRoot
from marketdata_assets.transform.resample import TIMEFRAMES
from marketdata_assets.universe import DVOL_VENUE, run_tags

GAP_SENSOR = "gap_backfill"
CATALOG_SENSOR = "catalog_refresh"
CATALOG_JOB = "refresh_catalog"
INSTRUMENTS_JOB = "refresh_instruments"
INSTRUMENTS_SCHEDULE = "daily_instruments"
AUTOMATION_TAG = "marketdata/automation"
LAUNCHED_BY_TAG = "marketdata/launched_by"
REASONS_TAG = "marketdata/reasons"
TRIES_TAG = "marketdata/tries"
IN_FLIGHT_STATUSES = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]


def refresh_job_name(venue: str) -> str:
    return f"refresh_{venue}"


def venue_series(settings: LoadedSettings) -> list[Series]:
    """Every venue's series (candle venues, then DVOL), instruments in partition order."""
    out = [Series(venue, tuple(cfg.symbol_keys), cfg.start_date) for venue, cfg in settings.venues.items()]
    if settings.dvol is not None:
        out.append(Series(DVOL_VENUE, tuple(settings.dvol.currencies), settings.dvol.start_date))
    return out


def refresh_keys(venue: str) -> list[AssetKey]:
    """The assets a refresh of ``venue`` materialises, raw first."""
    if venue == DVOL_VENUE:
        return [DVOL_RAW_KEY, *(dvol_key(tf) for tf in DVOL_TIMEFRAMES)]
    return [
        raw_candles_key(venue),
        validated_candles_key(venue),
        gaps_key(venue),
        *(resampled_key(venue, tf) for tf in TIMEFRAMES),
    ]


def _partitions_def(settings: LoadedSettings, venue: str):  # noqa: ANN202 - MultiPartitionsDefinition
    if venue == DVOL_VENUE:
        assert settings.dvol is not None
        return dvol_partitions(settings.dvol)
    return candle_partitions(settings.venues[venue])


def batch_tags(batch: Batch, launched_by: str) -> dict[str, str]:
    tags = {
        PARTITION_RANGE_START_TAG: batch.range_start,
        PARTITION_RANGE_END_TAG: batch.range_end,
        LAUNCHED_BY_TAG: launched_by,
        AUTOMATION_TAG: launched_by.split()[-1],
        **run_tags(batch.series.venue, batch.instruments, batch.start, batch.end, launched_by),
    }
    if batch.reasons:
        tags[REASONS_TAG] = ",".join(f"{reason}={n}" for reason, n in batch.reasons)
        tags[TRIES_TAG] = str(batch.tries)
    return tags


@dataclass(frozen=True)
class Automation:
    jobs: list
    schedules: list
    sensors: list


def build_automation(settings: LoadedSettings) -> Automation:
    series = venue_series(settings)
    jobs = {
        s.venue: define_asset_job(
            refresh_job_name(s.venue),
            selection=AssetSelection.assets(*refresh_keys(s.venue)),  # with their checks
            description=f"{s.venue}: raw through served with the checks, over a range of days x instruments.",
        )
        for s in series
    }
    catalog_job = define_asset_job(CATALOG_JOB, selection=AssetSelection.assets(CATALOG_KEY))
    instruments_job = define_asset_job(
        INSTRUMENTS_JOB,
        selection=AssetSelection.assets(*(instruments_key(venue) for venue in settings.venues)),
        description="Every candle venue's listed instruments (one request each), checked against the settings.",
    )
    schedules = [build_nightly_schedule(settings, s, jobs[s.venue]) for s in series]
    schedules.append(
        ScheduleDefinition(
            name=INSTRUMENTS_SCHEDULE,
            job=instruments_job,
            cron_schedule=settings.automation.nightly_cron,
            execution_timezone="UTC",
            default_status=_schedule_status(settings),
            tags={LAUNCHED_BY_TAG: f"schedule {INSTRUMENTS_SCHEDULE}", AUTOMATION_TAG: INSTRUMENTS_SCHEDULE},
            description="Refreshes every venue's instruments daily, with the nightly runs.",
        )
    )
    sensors = [
        build_gap_backfill_sensor(settings, series, list(jobs.values())),
        build_catalog_sensor(settings, catalog_job),
    ]
    return Automation([*jobs.values(), catalog_job, instruments_job], schedules, sensors)


def _schedule_status(settings: LoadedSettings) -> DefaultScheduleStatus:
    return DefaultScheduleStatus.RUNNING if settings.automation.running else DefaultScheduleStatus.STOPPED


def _sensor_status(settings: LoadedSettings) -> DefaultSensorStatus:
    return DefaultSensorStatus.RUNNING if settings.automation.running else DefaultSensorStatus.STOPPED


# -- nightly ------------------------------------------------------------------------------------------


def build_nightly_schedule(settings: LoadedSettings, series: Series, job):  # noqa: ANN001, ANN201
    name = f"nightly_{series.venue}"

    @schedule(
        name=name,
        job=job,
        cron_schedule=settings.automation.nightly_cron,
        execution_timezone="UTC",
        default_status=_schedule_status(settings),
        description=(
            f"Yesterday (UTC) for every {series.venue} instrument, raw through served with the checks, "
            f"in one run, at '{settings.automation.nightly_cron}' UTC."
        ),
    )
    def nightly(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
        now = context.scheduled_execution_time or datetime.now(UTC)
        batch = nightly_batch(series, now)
        if batch is None:
            return SkipReason(f"{series.venue} partitions start on {series.start_date}: nothing closed yet")
        return RunRequest(
            run_key=f"{name}:{batch.start.isoformat()}",
            asset_selection=refresh_keys(series.venue),
            tags=batch_tags(batch, f"schedule {name}"),
        )

    return nightly


# -- gap backfill ---------------------------------------------------------------------------------------


def gap_policy(settings: LoadedSettings) -> GapPolicy:
    cfg = settings.automation
    return GapPolicy(
        lookback_days=cfg.lookback_days,
        history_backfill=cfg.history_backfill,
        backfill_order=cfg.backfill_order,
        max_days_per_run=cfg.max_days_per_run,
        max_runs_per_tick=cfg.max_runs_per_tick,
        max_runs_in_flight_per_venue=cfg.max_runs_in_flight_per_venue,
        nightly_grace_minutes=cfg.nightly_grace_minutes,
    )


def build_gap_backfill_sensor(settings: LoadedSettings, series: list[Series], jobs: list):  # noqa: ANN201
    cfg = settings.automation
    policy = gap_policy(settings)

    @sensor(
        name=GAP_SENSOR,
        jobs=jobs,
        minimum_interval_seconds=cfg.sensor_interval_s,
        default_status=_sensor_status(settings),
        description=(
            "Backfills days that are missing or failed (from start_date on), and re-fetches days "
            f"validated with an outage gap in the last {cfg.lookback_days} days, batched per venue, never "
            f"a day already queued or running; backs off per day and gives up after {cfg.max_tries} tries "
            "(recorded as an observation on the raw partition). The cursor holds the tries."
        ),
    )
    def gap_backfill(context: SensorEvaluationContext, storage: StorageResource) -> SensorResult:
        now_dt = datetime.now(UTC)
        now = now_dt.timestamp()
        window = scan_window(policy, now_dt)
        instance = context.instance
        runs_in_flight, in_flight = partitions_in_flight(instance, settings, series)
        needing, in_progress = days_needing_work(instance, settings, series, window, storage.root())
        in_flight |= in_progress
        backoff = Backoff.from_cursor(
            context.cursor, base_s=cfg.retry_base_minutes * 60, max_tries=cfg.max_tries
        )
        plan = plan_gap_backfill(series, needing, in_flight, runs_in_flight, backoff, policy, now)
        backoff.forget_except(needing, in_flight, min(s.start_date for s in series))

        events = []
        for day, attempts in plan.given_up:
            message = f"still missing after {attempts.tries} tries ({attempts.reason})"
            context.log.warning(f"{GAP_SENSOR}: {day.venue} {day.instrument} {day.day}: {message}")
            s = next(s for s in series if s.venue == day.venue)
            events.append(
                AssetObservation(
                    asset_key=refresh_keys(day.venue)[0],
                    partition=s.partition_key(day.instrument, day.day),
                    metadata={
                        "automation": MetadataValue.text(message),
                        "reason": MetadataValue.text(attempts.reason),
                        "tries": MetadataValue.int(attempts.tries),
                        "last_requested_utc": MetadataValue.text(
                            datetime.fromtimestamp(attempts.last_at, UTC).isoformat(timespec="seconds")
                        ),
                    },
                )
            )
        requests = []
        stamp = now_dt.strftime("%Y%m%dT%H%M%S")
        for batch in plan.batches:
            context.log.info(
                f"{GAP_SENSOR}: requesting {batch.describe()} ({', '.join(f'{r}={n}' for r, n in batch.reasons)}, "
                f"try {batch.tries})"
            )
            requests.append(
                RunRequest(
                    run_key=f"{GAP_SENSOR}:{batch.range_start}:{batch.range_end}:{stamp}",
                    job_name=refresh_job_name(batch.venue),
                    asset_selection=refresh_keys(batch.venue),
                    tags=batch_tags(batch, f"sensor {GAP_SENSOR}"),
                )
            )
        given_up = backoff.given_up()
        summary = plan.summary()
        if given_up:
            summary += f"; {len(given_up)} day(s) still missing after {cfg.max_tries} tries: " + ", ".join(
                f"{d.venue} {d.instrument} {d.day}" for d, _ in given_up[:10]
            )
        context.log.info(f"{GAP_SENSOR}: {summary}")
        return SensorResult(
            run_requests=requests,
            skip_reason=None if requests else summary,
            cursor=backoff.to_cursor(),
            asset_events=events,
        )

    return gap_backfill


BACKFILL_LOOKBACK = 200  # the newest backfills looked at for requested partitions


def partitions_in_flight(
    instance,  # noqa: ANN001 - DagsterInstance
    settings: LoadedSettings,
    series: list[Series],
) -> tuple[dict[str, int], set[Day]]:
    """(runs per venue, days) of the runs queued or running and of the asset backfills still requested."""
    owners = {key: s for s in series for key in refresh_keys(s.venue)}
    jobs = {refresh_job_name(s.venue): s for s in series}
    runs: Counter[str] = Counter()
    days: set[Day] = set()

    def add(s: Series, partition_keys: list[str]) -> None:
        for key in partition_keys:
            day = _parse_day(s, key)
            if day is not None:
                days.add(day)

    for run in instance.get_runs(filters=RunsFilter(statuses=IN_FLIGHT_STATUSES)):
        if run.asset_selection:
            touched = {owners[k].venue: owners[k] for k in run.asset_selection if k in owners}
        elif run.job_name in jobs:
            touched = {jobs[run.job_name].venue: jobs[run.job_name]}
        else:
            touched = {}
        for venue, s in touched.items():
            runs[venue] += 1
            add(s, _run_partition_keys(settings, venue, run.tags))
    # Dagster exports no public filter type for backfills; their status is an enum whose value names it.
    for backfill in instance.get_backfills(limit=BACKFILL_LOOKBACK):
        if backfill.status.value != "REQUESTED":
            continue
        data = backfill.asset_backfill_data
        if data is not None:
            for key, subset in data.target_subset.partitions_subsets_by_asset_key.items():
                if key in owners:  # its runs count per venue once the backfill launches them
                    add(owners[key], list(subset.get_partition_keys()))
        elif backfill.partition_names and backfill.job_name in jobs:
            add(jobs[backfill.job_name], list(backfill.partition_names))
    return dict(runs), days


def _run_partition_keys(settings: LoadedSettings, venue: str, tags: dict[str, str]) -> list[str]:
    if PARTITION_NAME_TAG in tags:
        return [tags[PARTITION_NAME_TAG]]
    start, end = tags.get(PARTITION_RANGE_START_TAG), tags.get(PARTITION_RANGE_END_TAG)
    if start is None or end is None:
        return []
    try:
        return list(
            _partitions_def(settings, venue).get_partition_keys_in_range(PartitionKeyRange(start, end))
        )
    except Exception:  # noqa: BLE001 - a range of another shape (or an old symbol) is not one of ours
        return []


def _parse_day(series: Series, key: str) -> Day | None:
    try:
        instrument, day = series.split_key(str(key))
    except ValueError:
        return None
    return Day(series.venue, instrument, day)


def days_needing_work(
    instance,  # noqa: ANN001 - DagsterInstance
    settings: LoadedSettings,
    series: list[Series],
    window: ScanWindow,
    root: StorageRoot,
) -> tuple[dict[Day, Reason], set[Day]]:
    """Days of the scan window that some refresh asset lacks (missing), whose latest attempt failed, or
    whose validated data has an outage gap; plus the days Dagster reports in progress."""
    from dagster import AssetPartitionStatus

    needing: dict[Day, Reason] = {}
    in_progress: set[Day] = set()
    for s in series:
        first = window.first_for(s)
        if first > window.last:
            continue
        keys = {
            s.partition_key(i, d): Day(s.venue, i, d)
            for d in s.days(first, window.last)
            for i in s.instruments
        }
        partitions_def = _partitions_def(settings, s.venue)
        statuses = [
            instance.get_status_by_partition(key, list(keys), partitions_def) or {}
            for key in refresh_keys(s.venue)
        ]
        complete = []
        for partition_key, day in keys.items():
            found = [by_key.get(partition_key) for by_key in statuses]
            if AssetPartitionStatus.IN_PROGRESS in found:
                in_progress.add(day)
            elif AssetPartitionStatus.FAILED in found:
                needing[day] = Reason.FAILED
            elif None in found:
                needing[day] = Reason.MISSING
            elif day.day >= window.outage_from:
                complete.append(day)
        if not s.dvol:
            for day in outage_days(root, s, window) & set(complete):
                needing[day] = Reason.OUTAGE
    return needing, in_progress


def outage_days(root: StorageRoot, series: Series, window: ScanWindow) -> set[Day]:
    """Days in the outage window whose gap table holds an ``outage`` row."""
    import pandas as pd

    from marketdata_assets.storage.served import read_gaps

    first = max(window.outage_from, series.start_date)
    start = pd.Timestamp(first, tz="UTC")
    end = pd.Timestamp(window.last + timedelta(days=1), tz="UTC")
    out: set[Day] = set()
    for instrument in series.instruments:
        gaps = read_gaps(root, series.venue, instrument, start, end)
        for value in gaps.loc[gaps["kind"] == "outage", "day"]:
            out.add(Day(series.venue, instrument, pd.Timestamp(value).date()))
    return out


# -- catalog --------------------------------------------------------------------------------------------


def build_catalog_sensor(settings: LoadedSettings, job):  # noqa: ANN001, ANN201
    keys = served_keys(settings)
    refresh_jobs = {refresh_job_name(s.venue) for s in venue_series(settings)}
    served = set(keys)

    @sensor(
        name=CATALOG_SENSOR,
        job=job,
        minimum_interval_seconds=settings.automation.sensor_interval_s,
        default_status=_sensor_status(settings),
        description=(
            "Materialises serving/catalog once the served layer changed since the catalog's last run "
            "and no run that writes served data is queued or running (so once after the nightly runs "
            "or a backfill)."
        ),
    )
    def catalog_refresh(context: SensorEvaluationContext) -> RunRequest | SkipReason:
        instance = context.instance
        latest = 0
        for record in instance.get_asset_records(keys):
            last = record.asset_entry.last_materialization_record
            if last is not None:
                latest = max(latest, last.storage_id)
        if latest == 0:
            return SkipReason("nothing served yet")
        [catalog] = instance.get_asset_records([CATALOG_KEY]) or [None]
        last_catalog = catalog.asset_entry.last_materialization_record if catalog is not None else None
        if last_catalog is not None and last_catalog.storage_id > latest:
            return SkipReason("the catalog is newer than every served asset")
        writing = [
            run.run_id
            for run in instance.get_runs(filters=RunsFilter(statuses=IN_FLIGHT_STATUSES))
            if run.job_name in refresh_jobs or served & set(run.asset_selection or ())
        ]
        if writing:
            return SkipReason(f"{len(writing)} run(s) writing served data are queued or running")
        return RunRequest(
            run_key=f"{CATALOG_SENSOR}:{latest}",
            job_name=CATALOG_JOB,
            tags={LAUNCHED_BY_TAG: f"sensor {CATALOG_SENSOR}", AUTOMATION_TAG: CATALOG_SENSOR},
        )

    return catalog_refresh
