"""Served higher timeframes, the Dagster side: ``<venue>/ohlcv_5m|15m|1h|4h|1d`` in one step per range.

The work is :func:`marketdata_assets.pipeline.resample.resample_days`: it reads the validated minutes
once and obeys each day's stored verdict, so a day that fails a blocking check of the validated layer is
not resampled and its partition fails with the reason, while the other days of the range are written
and recorded. (Dagster's own blocking only acts on a whole step; this keeps the guarantee per day in
ranged backfill runs too.)
"""

from typing import Any

from dagster import AssetExecutionContext, AssetKey, AssetSpec, multi_asset

from marketdata_assets.defs.common import PartitionResult, days_by_instrument, finish, results_from_outcomes
from marketdata_assets.defs.partitions import backfill_policy, candle_partitions
from marketdata_assets.defs.resources import StorageResource
from marketdata_assets.defs.validated import validated_candles_key
from marketdata_assets.settings import LoadedSettings
from marketdata_assets.transform.resample import TIMEFRAMES

SERVED_GROUP = "served"


def resampled_key(venue: str, timeframe: str) -> AssetKey:
    return AssetKey([venue, f"ohlcv_{timeframe}"])


def build_resampled_assets(settings: LoadedSettings, venue: str):  # noqa: ANN201 - AssetsDefinition
    cfg = settings.venues[venue]
    partitions = candle_partitions(cfg)
    keys = {timeframe: resampled_key(venue, timeframe) for timeframe in TIMEFRAMES}

    @multi_asset(
        name=f"{venue}_resampled",
        specs=[
            AssetSpec(
                key,
                deps=[validated_candles_key(venue)],
                partitions_def=partitions,
                group_name=SERVED_GROUP,
                kinds={"parquet"},
                description=(
                    f"{timeframe} candles of {venue} resampled from validated 1m (left-closed, "
                    "left-labelled UTC bins; n_minutes / expected_minutes / complete mark bins with "
                    f"missing minutes), at `candles/timeframe={timeframe}/exchange={venue}/`."
                ),
            )
            for timeframe, key in keys.items()
        ],
        backfill_policy=backfill_policy(),
    )
    def resampled(context: AssetExecutionContext, storage: StorageResource) -> Any:
        from marketdata_assets.pipeline.resample import resample_days

        root = storage.root()
        results: list[PartitionResult] = []
        for key, items in days_by_instrument(venue, context.partition_keys).items():
            policy = settings.quality.check_policy(cfg.symbol_for_key(key))
            outcomes = resample_days(root, venue, key, [day for _, day in items], policy)
            results += results_from_outcomes(items, outcomes, keys)
        yield from finish(context, results, list(keys.values()))

    return resampled
