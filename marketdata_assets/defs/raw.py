"""Raw layer assets: one 1-minute candle asset per venue and one DVOL asset, each over a range.

Each asset body handles every partition of its run (a range of up to ``MAX_DAYS_PER_RUN`` days, the
assets' backfill policy), with one client per venue per run. Each partition is recorded with its own
day's numbers (``defs.common.finish``); when some partitions fail, the ones that succeeded are recorded
and the step fails naming the others.
"""

from collections.abc import Iterator, Sequence
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    MaterializeResult,
    asset,
)

from marketdata_assets.defs.common import PartitionResult, finish
from marketdata_assets.defs.partitions import (
    backfill_policy,
    candle_partitions,
    dvol_partitions,
    multi_key,
    split_key,
)
from marketdata_assets.defs.resources import StorageResource, VenuesResource
from marketdata_assets.pipeline import progress
from marketdata_assets.pipeline.ingest import PartitionOutcome, ingest_candle_days, ingest_dvol_days
from marketdata_assets.settings import LoadedSettings
from marketdata_assets.universe import DVOL_VENUE

RAW_GROUP = "raw"


def raw_candles_key(venue: str) -> AssetKey:
    return AssetKey([venue, "ohlcv_1m_raw"])


DVOL_RAW_KEY = AssetKey(["deribit", "dvol_raw"])


def build_raw_candle_asset(settings: LoadedSettings, venue: str):  # noqa: ANN201 - AssetsDefinition
    cfg = settings.venues[venue]

    @asset(
        key=raw_candles_key(venue),
        partitions_def=candle_partitions(cfg),
        backfill_policy=backfill_policy(),
        group_name=RAW_GROUP,
        kinds={"parquet", "ccxt"},
        pool=f"venue_{venue}",
        description=(
            f"Closed 1-minute OHLCV candles of one UTC day from {venue} spot, exactly as the venue "
            "returned them (page-boundary duplicates kept and counted), one Parquet file per "
            f"partition under `raw/ohlcv_1m/exchange={venue}/`."
        ),
    )
    def raw_candles(
        context: AssetExecutionContext, storage: StorageResource, venues: VenuesResource
    ) -> Iterator[MaterializeResult]:
        from marketdata_assets.storage.revisions import store_raw_candles

        items = [
            (cfg.symbol_for_key(symbol), day)
            for symbol, day in (split_key(venue, k) for k in context.partition_keys)
        ]
        root = storage.root()
        outcomes = _ingest_range(
            context,
            venues.source(venue),
            lambda source, on_partition: ingest_candle_days(
                source,
                lambda key, day, fetched: store_raw_candles(root, venue, key, day, fetched.frame),
                venue,
                items,
                progress=on_partition,
            ),
        )
        yield from _finish(context, venue, outcomes)

    return raw_candles


def build_dvol_raw_asset(settings: LoadedSettings):  # noqa: ANN201 - AssetsDefinition
    cfg = settings.dvol
    assert cfg is not None

    @asset(
        key=DVOL_RAW_KEY,
        partitions_def=dvol_partitions(cfg),
        backfill_policy=backfill_policy(),
        group_name=RAW_GROUP,
        kinds={"parquet"},
        pool="venue_deribit",
        description=(
            "Deribit DVOL (30-day implied volatility index) points of one UTC day, at 1-minute "
            f"resolution for the last {cfg.minute_history_days} days and hourly before that, "
            "one Parquet file per partition under `raw/dvol/`."
        ),
    )
    def dvol_raw(
        context: AssetExecutionContext, storage: StorageResource, venues: VenuesResource
    ) -> Iterator[MaterializeResult]:
        from marketdata_assets.storage.raw import write_raw_dvol

        items = [split_key(DVOL_VENUE, k) for k in context.partition_keys]
        root = storage.root()
        outcomes = _ingest_range(
            context,
            venues.source(DVOL_VENUE),
            lambda source, on_partition: ingest_dvol_days(
                source,
                lambda key, day, fetched: write_raw_dvol(
                    root, key, day, fetched.frame, resolution_s=fetched.resolution_s
                ),
                items,
                progress=on_partition,
            ),
        )
        yield from _finish(context, DVOL_VENUE, outcomes)

    return dvol_raw


def _ingest_range(context: AssetExecutionContext, source: Any, ingest: Any) -> list:
    """One client for the venue for the whole run; ``ingest(source, on_partition)`` does the work."""
    try:
        return ingest(source, _progress(context))
    finally:
        close = getattr(source, "close", None)
        if callable(close):
            close()


def _progress(context: AssetExecutionContext):  # noqa: ANN202
    def on_partition(outcome: PartitionOutcome) -> None:
        if outcome.ok:
            context.log.info(
                f"{outcome.venue} {outcome.instrument} {outcome.day}: {outcome.rows} rows, "
                f"{outcome.missing_minutes} missing minutes, {outcome.requests} requests"
            )
        else:
            context.log.error(f"{outcome.venue} {outcome.instrument} {outcome.day}: {outcome.error}")
        progress.report(outcome)

    return on_partition


def outcome_metadata(outcome: PartitionOutcome) -> dict[str, Any]:
    """What a user wants to see for one partition in the UI (plain values; see ``common.to_metadata``)."""
    metadata: dict[str, Any] = {
        "rows": outcome.rows,
        "first_timestamp": outcome.first_timestamp or "-",
        "last_timestamp": outcome.last_timestamp or "-",
        "missing_minutes": outcome.missing_minutes,
        "missing_ranges_utc": ", ".join(outcome.missing_ranges) or "none",
        "duplicates": outcome.duplicates,
        "requests": outcome.requests,
        "retries": outcome.retries,
        "bytes": outcome.bytes,
        "source_url": outcome.source_url,
        "path": outcome.path,
        "fetch_seconds": outcome.elapsed_s,
    }
    if outcome.resolution_s is not None:
        metadata["resolution_seconds"] = outcome.resolution_s
    if outcome.venue != DVOL_VENUE:
        metadata["revised_candles"] = outcome.revised_candles
        metadata["added_candles"] = outcome.added_candles
        metadata["rejected_candles"] = outcome.rejected_candles
        metadata["max_rel_price_revision"] = float(outcome.max_rel_price_revision)
    return metadata


def _finish(
    context: AssetExecutionContext, venue: str, outcomes: Sequence[PartitionOutcome]
) -> Iterator[MaterializeResult]:
    results = [
        PartitionResult(
            multi_key(venue, o.day, o.key),
            f"{o.day.isoformat()} {o.instrument}",
            ok=o.ok,
            error=o.error,
            metadata={context.asset_key: outcome_metadata(o)},
        )
        for o in outcomes
    ]
    yield from finish(context, results, [context.asset_key])
