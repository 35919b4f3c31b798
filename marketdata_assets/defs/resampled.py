"""Served higher timeframes: 5m, 15m, 1h, 4h and 1d per venue, computed in one step from validated 1m.

The step reads each validated day once and writes every timeframe from it (left-closed, left-labelled
UTC bins; a filler minute never sets open/high/low; a bin with missing minutes is kept and marked
``complete = false``). Before resampling a day it applies the same rules as the validated layer's
blocking checks (:func:`~marketdata_assets.quality.day_checks.validated_day_usable`): a day that fails
them is not resampled and its partition fails with the reason, while the other days of the range are
written and recorded. (Dagster's own blocking only acts on a whole step; this keeps the guarantee per
day in ranged backfill runs too.)
"""

from collections import defaultdict
from datetime import date, timedelta
from typing import Any

import pandas as pd
from dagster import AssetExecutionContext, AssetKey, AssetSpec, BackfillPolicy, multi_asset

from marketdata_assets.assets.common import PartitionResult, finish, storage_root
from marketdata_assets.assets.partitions import SYMBOL, candle_partitions, split_key
from marketdata_assets.assets.validated import validated_candles_key
from marketdata_assets.settings import LoadedSettings
from marketdata_assets.transform.resample import TIMEFRAMES

SERVED_GROUP = "served"
RESAMPLED_COLUMNS = ("bins", "incomplete_bins")


def resampled_key(venue: str, timeframe: str) -> AssetKey:
    return AssetKey([venue, f"ohlcv_{timeframe}"])


def build_resampled_assets(settings: LoadedSettings, venue: str):  # noqa: ANN201 - AssetsDefinition
    from marketdata_assets.assets.checks import check_policy

    cfg = settings.venues[venue]
    partitions = candle_partitions(cfg)
    policy = check_policy(settings)
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
                    f"missing minutes), at candles/timeframe={timeframe}/exchange={venue}/."
                ),
            )
            for timeframe, key in keys.items()
        ],
        backfill_policy=BackfillPolicy.single_run(),
    )
    def resampled(context: AssetExecutionContext) -> Any:
        from marketdata_assets.quality.day_checks import validated_day_usable
        from marketdata_assets.storage.raw import read_quarantine_candles
        from marketdata_assets.storage.served import read_gaps, read_served_candles, write_served_days
        from marketdata_assets.transform.resample import resample_all

        root = storage_root(settings)
        days_by_symbol: dict[str, list[tuple[str, date]]] = defaultdict(list)
        for partition_key in context.partition_keys:
            key, day = split_key(partition_key, SYMBOL)
            days_by_symbol[key].append((partition_key, day))

        results: list[PartitionResult] = []
        for key, items in days_by_symbol.items():
            first, last = min(d for _, d in items), max(d for _, d in items)
            start = pd.Timestamp(first, tz="UTC")
            end = pd.Timestamp(last + timedelta(days=1), tz="UTC")
            minutes = read_served_candles(root, "1m", venue, key, start, end)
            gap_days = {pd.Timestamp(d).date() for d in read_gaps(root, venue, key, start, end)["day"]}
            minute_days = minutes["timestamp"].dt.date
            out: dict[str, dict[date, pd.DataFrame]] = defaultdict(dict)
            for partition_key, day in items:
                result = PartitionResult(partition_key, f"{day.isoformat()} {key}")
                results.append(result)
                day_frame = minutes.loc[(minute_days == day).to_numpy()].reset_index(drop=True)
                if not len(day_frame) and day not in gap_days:
                    result.fail(
                        f"no validated data for this day: materialise "
                        f"{validated_candles_key(venue).to_user_string()} first"
                    )
                    continue
                quarantined = _quarantined_rows(read_quarantine_candles, root, venue, key, day)
                blocked = validated_day_usable(day_frame, day, quarantined_rows=quarantined, policy=policy)
                if blocked is not None:
                    result.fail(f"not resampled: validated {blocked.name} check fails: {blocked.description}")
                    continue
                frames = resample_all(day_frame[["timestamp", "open", "high", "low", "close", "volume"]])
                for timeframe, frame in frames.items():
                    out[timeframe][day] = frame
                    result.metadata[keys[timeframe]] = {
                        "bins": len(frame),
                        "incomplete_bins": int((~frame["complete"]).sum()) if len(frame) else 0,
                    }
            for timeframe, frames_by_day in out.items():
                write_served_days(root, timeframe, venue, key, frames_by_day)
        yield from finish(context, results, {key: RESAMPLED_COLUMNS for key in keys.values()})

    return resampled


def _quarantined_rows(read: Any, root: Any, venue: str, key: str, day: date) -> int:
    try:
        return len(read(root, venue, key, day))
    except FileNotFoundError:
        return 0
