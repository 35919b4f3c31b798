"""Freshness checks: one per served 1m series family, flagging series whose newest candle is too old.

``<venue>/ohlcv_1m:freshness`` and ``deribit/dvol_1m:freshness`` look at the newest served 1-minute
row of every configured symbol (currency) and warn when it is older than
``quality.max_staleness_hours`` (default 26 h: yesterday's last candle opens at 23:59 UTC, the nightly
refresh runs shortly after midnight). They run with every materialisation of those assets and on their
own every hour (``freshness_checks_schedule``, running when ``automation.running`` is true, like the
other schedules), so a venue that stopped updating shows in the UI even when nothing materialises.

Each check yields its evaluation itself, naming the asset's latest materialisation (one indexed
query). Returning an ``AssetCheckResult`` from an unpartitioned check on a partitioned asset makes
Dagster resolve that materialisation through the step's data-version cache, which lists every
partition key of the asset (days since the start x symbols): ~0.3 s per run for 3 symbols since
2024, growing with history and symbols, in every refresh run and every hourly evaluation.
"""

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pandas as pd
from dagster import (
    AssetCheckEvaluation,
    AssetCheckExecutionContext,
    AssetCheckKey,
    AssetCheckSeverity,
    AssetKey,
    AssetSelection,
    DefaultScheduleStatus,
    Output,
    ScheduleDefinition,
    asset_check,
    define_asset_job,
)

# Private Dagster API, as in checks.py: the evaluation names the materialisation it judges.
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

from marketdata_assets.defs.common import to_metadata
from marketdata_assets.defs.dvol import dvol_key
from marketdata_assets.defs.resources import StorageResource
from marketdata_assets.defs.validated import validated_candles_key
from marketdata_assets.quality.tables import table
from marketdata_assets.settings import LoadedSettings
from marketdata_assets.universe import DVOL_VENUE

FRESHNESS_CHECK = "freshness"


def _latest(root, dataset, keys: dict[str, str]) -> pd.Timestamp | None:  # noqa: ANN001
    """Open time of the newest row of one served series (only its last month file is read)."""
    from marketdata_assets.storage.served import read_range

    months = dataset.months(root, keys)
    if not months:
        return None
    frame = read_range(root, dataset, keys, start=pd.Timestamp(months[-1] + "-01", tz="UTC"))
    return None if frame.empty else frame["timestamp"].max()


def venues_being_refreshed(instance) -> set[str]:  # noqa: ANN001 - DagsterInstance
    """Venues with a queued or running run that materialises their assets (a backfill, a nightly run)."""
    from dagster import RunsFilter

    from marketdata_assets.defs.automation import IN_FLIGHT_STATUSES

    venues: set[str] = set()
    for run in instance.get_runs(filters=RunsFilter(statuses=IN_FLIGHT_STATUSES)):
        venues |= {key.path[0] for key in run.asset_selection or ()}
        if run.job_name.startswith("refresh_"):
            venues.add(run.job_name.removeprefix("refresh_"))
    return venues


def _check(
    context: AssetCheckExecutionContext,
    settings: LoadedSettings,
    storage: StorageResource,
    venue: str,
    asset_key: AssetKey,
    series: dict[str, tuple[object, dict[str, str]]],
) -> Iterator[Any]:
    """The check's evaluation (targeting the asset's latest materialisation), then its empty output."""
    from marketdata_assets.quality.freshness import freshness

    root = storage.root()
    now = pd.Timestamp.now(tz="UTC")
    max_lag = timedelta(hours=settings.quality.max_staleness_hours)
    backfilling = venue in venues_being_refreshed(context.instance)
    results = [
        freshness(name, _latest(root, dataset, keys), now, max_lag, backfilling=backfilling)
        for name, (dataset, keys) in series.items()
    ]
    stale = [r for r in results if r.stale]
    series_table = table(
        ["series", "newest candle (UTC)", "age (h)", "fresh"],
        [
            [
                r.series,
                r.latest.isoformat() if r.latest is not None else "-",
                f"{r.lag.total_seconds() / 3600:.1f}" if r.lag is not None else "-",
                r.fresh if r.judged else r.note,
            ]
            for r in results
        ],
    )
    judged = [r for r in results if r.judged]
    unjudged = "; ".join(r.describe() for r in results if not r.judged)
    description = (
        f"all {len(judged)} judged series newer than {settings.quality.max_staleness_hours:g} h"
        if not stale
        else f"{len(stale)} of {len(judged)} series stale: " + "; ".join(r.describe() for r in stale)
    ) + (f" ({unjudged})" if unjudged else "")
    latest = next(iter(context.instance.fetch_materializations(asset_key, limit=1).records), None)
    yield AssetCheckEvaluation(
        asset_key=asset_key,
        check_name=FRESHNESS_CHECK,
        passed=not stale,
        severity=AssetCheckSeverity.WARN,
        description=description,
        metadata=to_metadata(
            {"stale_series": len(stale), "max_staleness_hours": settings.quality.max_staleness_hours}
        )
        | to_metadata({"series": series_table}),
        target_materialization_data=None
        if latest is None
        else AssetCheckEvaluationTargetMaterializationData(
            storage_id=latest.storage_id, run_id=latest.run_id, timestamp=latest.timestamp
        ),
        blocking=False,
    )
    check_key = AssetCheckKey(asset_key, FRESHNESS_CHECK)
    yield Output(
        None,
        output_name=context.op_execution_context.assets_def.get_output_name_for_asset_check_key(check_key),
    )


def build_freshness_checks(settings: LoadedSettings) -> list:
    from marketdata_assets.storage.served import CANDLES, DVOL

    checks = []
    for venue, cfg in settings.venues.items():
        series = {
            f"{venue} {key}": (CANDLES, {"timeframe": "1m", "exchange": venue, "symbol": key})
            for key in cfg.symbol_keys
        }
        checks.append(_candle_check(settings, venue, series))
    if settings.dvol is not None:
        dvol_series = {
            f"deribit DVOL {currency}": (DVOL, {"timeframe": "1m", "currency": currency})
            for currency in settings.dvol.currencies
        }

        @asset_check(
            asset=dvol_key("1m"),
            name=FRESHNESS_CHECK,
            description="the newest served 1m DVOL point of every configured currency is recent",
        )
        def dvol_fresh(context: AssetCheckExecutionContext, storage: StorageResource) -> Iterator[Any]:
            yield from _check(context, settings, storage, DVOL_VENUE, dvol_key("1m"), dvol_series)

        checks.append(dvol_fresh)
    return checks


def _candle_check(settings: LoadedSettings, venue: str, series: dict):  # noqa: ANN202
    @asset_check(
        asset=validated_candles_key(venue),
        name=FRESHNESS_CHECK,
        description=f"the newest served 1m candle of every configured {venue} symbol is recent",
    )
    def candles_fresh(context: AssetCheckExecutionContext, storage: StorageResource) -> Iterator[Any]:
        yield from _check(context, settings, storage, venue, validated_candles_key(venue), series)

    return candles_fresh


def freshness_check_keys(settings: LoadedSettings) -> list[AssetCheckKey]:
    keys = [AssetCheckKey(validated_candles_key(venue), FRESHNESS_CHECK) for venue in settings.venues]
    if settings.dvol is not None:
        keys.append(AssetCheckKey(dvol_key("1m"), FRESHNESS_CHECK))
    return keys


def build_freshness_schedule(settings: LoadedSettings) -> ScheduleDefinition:
    """Hourly evaluation of the freshness checks alone (no asset is materialised)."""
    job = define_asset_job(
        "freshness_checks", selection=AssetSelection.checks(*freshness_check_keys(settings))
    )
    return ScheduleDefinition(
        name="freshness_checks_schedule",
        job=job,
        cron_schedule="5 * * * *",
        execution_timezone="UTC",
        default_status=(
            DefaultScheduleStatus.RUNNING if settings.automation.running else DefaultScheduleStatus.STOPPED
        ),
        description="Evaluates the freshness checks every hour, so a stalled venue shows in the UI.",
    )
