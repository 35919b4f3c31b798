"""Served DVOL: 1-minute (forward-filled inside the range DVOL covers, marked ``filled``) and 1-hour.

One step reads each raw DVOL day once: duplicates collapse (last fetched wins), rows failing the
:class:`~marketdata_assets.quality.DvolCandles` schema are left out (counted, with the failing rows in the
metadata), then both timeframes are written to ``dvol/timeframe=1m|1h/currency=/month=``.
"""

from collections import defaultdict
from datetime import date
from typing import Any

import pandas as pd
from dagster import AssetExecutionContext, AssetKey, AssetSpec, BackfillPolicy, multi_asset

from marketdata_assets.assets.common import PartitionResult, finish, storage_root
from marketdata_assets.assets.partitions import CURRENCY, dvol_partitions, split_key
from marketdata_assets.assets.raw import DVOL_RAW_KEY
from marketdata_assets.settings import LoadedSettings

DVOL_TIMEFRAMES = ("1m", "1h")
DVOL_COLUMNS = ("points", "dropped_rows", "rows", "filled_rows")


def dvol_key(timeframe: str) -> AssetKey:
    return AssetKey(["deribit", f"dvol_{timeframe}"])


def build_dvol_served_assets(settings: LoadedSettings):  # noqa: ANN201 - AssetsDefinition
    from marketdata_assets.assets.checks import check_policy

    cfg = settings.dvol
    assert cfg is not None
    partitions = dvol_partitions(cfg)
    policy = check_policy(settings)
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
                description=f"{descriptions[timeframe]} At dvol/timeframe={timeframe}/currency=*/.",
            )
            for timeframe, key in keys.items()
        ],
        backfill_policy=BackfillPolicy.single_run(),
    )
    def dvol_served(context: AssetExecutionContext) -> Any:
        from marketdata_assets.quality import DvolCandles, dedupe_candles, validate_candles
        from marketdata_assets.quality.day_checks import markdown_table
        from marketdata_assets.storage.raw import read_raw_dvol
        from marketdata_assets.storage.served import write_served_dvol_days
        from marketdata_assets.transform.dvol import dvol_hourly, dvol_to_minutes

        root = storage_root(settings)
        results: list[PartitionResult] = []
        out: dict[str, dict[str, dict[date, pd.DataFrame]]] = defaultdict(lambda: defaultdict(dict))
        for partition_key in context.partition_keys:
            currency, day = split_key(partition_key, CURRENCY)
            result = PartitionResult(partition_key, f"{day.isoformat()} {currency}")
            results.append(result)
            try:
                raw = read_raw_dvol(root, currency, day)
            except FileNotFoundError as exc:
                result.fail(f"raw DVOL missing, materialise {DVOL_RAW_KEY.to_user_string()} first ({exc})")
                continue
            resolution = raw["resolution_s"].dropna()
            points = dedupe_candles(raw.drop(columns=["resolution_s"])).frame
            report = validate_candles(points, day, model=DvolCandles)
            if report.frame_failures:
                result.fail(f"raw DVOL cannot be validated: {report.failure_markdown(3)}")
                continue
            bad = sorted(report.failing_rows)
            valid = points.drop(index=bad).reset_index(drop=True)
            if len(valid) == 0:
                minutes = dvol_to_minutes(valid, resolution_s=60)
            else:
                # a day with a single point has no spacing to infer from; Deribit's hourly series is the
                # only one that thin
                resolution_s = int(resolution.iloc[0]) if len(resolution) else 3600
                minutes = dvol_to_minutes(valid, resolution_s=resolution_s)
            hourly = dvol_hourly(minutes)
            out["1m"][currency][day] = minutes
            out["1h"][currency][day] = hourly
            common = {"points": len(points), "dropped_rows": len(bad)}
            if bad:
                common["dropped_md"] = markdown_table(points.iloc[bad].head(policy.failure_rows))
            result.metadata[keys["1m"]] = {
                **common,
                "rows": len(minutes),
                "filled_rows": int(minutes["filled"].sum()) if len(minutes) else 0,
            }
            result.metadata[keys["1h"]] = {**common, "rows": len(hourly), "filled_rows": 0}
        for timeframe, by_currency in out.items():
            for currency, frames_by_day in by_currency.items():
                write_served_dvol_days(root, timeframe, currency, frames_by_day)
        yield from finish(context, results, {key: DVOL_COLUMNS for key in keys.values()})

    return dvol_served
