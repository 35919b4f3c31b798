"""Served DVOL, the Dagster side: ``deribit/dvol_1m`` + ``deribit/dvol_1h`` in one step per range.

The work is :func:`marketdata_assets.pipeline.dvol.serve_dvol_days` (dedupe, validate, minutes forward-
filled inside the range DVOL covers and marked ``filled``, hourly candles from observed points).
"""

from typing import Any

from dagster import AssetExecutionContext, AssetKey, AssetSpec, multi_asset

from marketdata_assets.defs.common import PartitionResult, days_by_instrument, finish, results_from_outcomes
from marketdata_assets.defs.partitions import backfill_policy, dvol_partitions
from marketdata_assets.defs.raw import DVOL_RAW_KEY
from marketdata_assets.defs.resources import StorageResource
from marketdata_assets.settings import LoadedSettings
from marketdata_assets.universe import DVOL_TIMEFRAMES, DVOL_VENUE


def dvol_key(timeframe: str) -> AssetKey:
    return AssetKey(["deribit", f"dvol_{timeframe}"])


def build_dvol_served_assets(settings: LoadedSettings):  # noqa: ANN201 - AssetsDefinition
    cfg = settings.dvol
    assert cfg is not None
    partitions = dvol_partitions(cfg)
    policy = settings.quality.check_policy()
    keys = {timeframe: dvol_key(timeframe) for timeframe in DVOL_TIMEFRAMES}
    descriptions = {
        "1m": "DVOL on every minute of the range Deribit covers that day; minutes between observations "
        "carry the latest value with filled = true (never extended past the last observation's interval).",
        "1h": "Hourly DVOL candles (open first, high max, low min, close last) from observed points only.",
    }

    @multi_asset(
        name="deribit_dvol_served",
        specs=[
            AssetSpec(
                key,
                deps=[DVOL_RAW_KEY],
                partitions_def=partitions,
                group_name="served",
                kinds={"parquet"},
                description=f"{descriptions[timeframe]} At `dvol/timeframe={timeframe}/currency=*/`.",
            )
            for timeframe, key in keys.items()
        ],
        backfill_policy=backfill_policy(),
    )
    def dvol_served(context: AssetExecutionContext, storage: StorageResource) -> Any:
        from marketdata_assets.pipeline.dvol import serve_dvol_days

        root = storage.root()
        results: list[PartitionResult] = []
        for currency, items in days_by_instrument(DVOL_VENUE, context.partition_keys).items():
            outcomes = serve_dvol_days(root, currency, [day for _, day in items], policy)
            results += results_from_outcomes(items, outcomes, keys)
        yield from finish(context, results, list(keys.values()))

    return dvol_served
