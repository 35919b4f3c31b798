"""Validated layer, the Dagster side: ``<venue>/ohlcv_1m`` + ``<venue>/gaps`` in one step per range.

The work is :func:`marketdata_assets.pipeline.validate.validate_days` (one validation per day, served 1m,
quarantine, gaps, the day's verdict); this module only declares the assets and reports each day's
outcome. A day whose raw file is missing or cannot be read as candles fails that partition (named in
the error); the other partitions of the range are still written and recorded.
"""

from typing import Any

from dagster import AssetExecutionContext, AssetKey, AssetSpec, multi_asset

from marketdata_assets.defs.common import PartitionResult, days_by_instrument, finish, results_from_outcomes
from marketdata_assets.defs.partitions import backfill_policy, candle_partitions
from marketdata_assets.defs.raw import raw_candles_key
from marketdata_assets.defs.resources import StorageResource
from marketdata_assets.settings import LoadedSettings

VALIDATED_GROUP = "validated"


def validated_candles_key(venue: str) -> AssetKey:
    return AssetKey([venue, "ohlcv_1m"])


def gaps_key(venue: str) -> AssetKey:
    return AssetKey([venue, "gaps"])


def build_validated_assets(settings: LoadedSettings, venue: str):  # noqa: ANN201 - AssetsDefinition
    cfg = settings.venues[venue]
    quality = settings.quality
    partitions = candle_partitions(cfg)
    candles_key, gap_key = validated_candles_key(venue), gaps_key(venue)

    @multi_asset(
        name=f"{venue}_validated",
        specs=[
            AssetSpec(
                candles_key,
                deps=[raw_candles_key(venue)],
                partitions_def=partitions,
                group_name=VALIDATED_GROUP,
                kinds={"parquet", "pandera"},
                description=(
                    f"Validated 1-minute candles from {venue}: deduplicated (last fetch wins), sorted, "
                    "only rows passing the ValidatedCandles schema; each day's verdict beside it. Served at "
                    f"`candles/timeframe=1m/exchange={venue}/symbol=*/month=*/data.parquet`; failing rows "
                    f"are kept with their reason under `quarantine/ohlcv_1m/exchange={venue}/`."
                ),
            ),
            AssetSpec(
                gap_key,
                deps=[raw_candles_key(venue)],
                partitions_def=partitions,
                group_name=VALIDATED_GROUP,
                kinds={"parquet"},
                description=(
                    f"Gap table of {venue}: every run of minutes without a real trade, with its kind "
                    "(no_trades: minutes without a trade; filler: Binance zero-volume filler rows; outage: "
                    f"a long stretch in which the venue served nothing), under `gaps/exchange={venue}/`."
                ),
            ),
        ],
        backfill_policy=backfill_policy(),
    )
    def validated(context: AssetExecutionContext, storage: StorageResource) -> Any:
        from marketdata_assets.pipeline.validate import VenueActivity, validate_days

        root = storage.root()
        activity = VenueActivity(root, venue, cfg.symbol_keys)  # corroborates outages across symbols
        results: list[PartitionResult] = []
        for key, items in days_by_instrument(venue, context.partition_keys).items():
            policy = quality.check_policy(cfg.symbol_for_key(key))
            outcomes = validate_days(root, venue, key, [day for _, day in items], policy, activity=activity)
            results += results_from_outcomes(items, outcomes, {"1m": candles_key, "gaps": gap_key})
            context.log.info(
                f"{venue} {key}: {sum(o.ok for o in outcomes)} of {len(outcomes)} days validated"
            )
        yield from finish(context, results, [candles_key, gap_key])

    return validated
