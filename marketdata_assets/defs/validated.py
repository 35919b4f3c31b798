"""Validated layer: per venue, the deduplicated, validated 1-minute candles and the gap table.

One step per range reads each raw day once and writes:

* ``<venue>/ohlcv_1m``: the rows that pass :class:`~marketdata_assets.quality.ValidatedCandles` into the
  served 1m dataset (``candles/timeframe=1m/...``, one file per month); rows that fail go to
  ``quarantine/ohlcv_1m/...`` with their reason, never dropped silently;
* ``<venue>/gaps``: the day's gaps (no_trades / filler / outage) into ``gaps/exchange=/symbol=/month=``.

A day whose raw file is missing or cannot be read as candles fails that partition (named in the
error); the other partitions of the range are still written and recorded.
"""

from collections import defaultdict
from datetime import date
from typing import Any

import pandas as pd
from dagster import AssetExecutionContext, AssetKey, AssetSpec, BackfillPolicy, multi_asset

from marketdata_assets.assets.common import PartitionResult, finish, storage_root
from marketdata_assets.assets.partitions import SYMBOL, candle_partitions, split_key
from marketdata_assets.assets.raw import raw_candles_key
from marketdata_assets.settings import LoadedSettings

VALIDATED_GROUP = "validated"
VALIDATED_COLUMNS = (
    "rows_fetched",
    "rows_valid",
    "quarantined_rows",
    "identical_duplicates",
    "conflicting_duplicates",
    "missing_minutes",
    "outage_minutes",
    "no_trade_minutes",
    "filler_minutes",
    "quarantined_minutes",
)
GAP_COLUMNS = ("gaps", "outage_minutes", "no_trade_minutes", "filler_minutes", "quarantined_minutes")


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
                    "only rows passing the ValidatedCandles schema. Served at "
                    f"candles/timeframe=1m/exchange={venue}/symbol=*/month=*/data.parquet; failing rows are "
                    f"kept with their reason under quarantine/ohlcv_1m/exchange={venue}/."
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
                    "(no_trades: short omitted run; filler: Binance zero-volume filler rows; outage: "
                    f"a long run without candles), under gaps/exchange={venue}/."
                ),
            ),
        ],
        backfill_policy=BackfillPolicy.single_run(),
    )
    def validated(context: AssetExecutionContext) -> Any:
        from marketdata_assets.quality import clean_partition, filler_mask, find_gaps
        from marketdata_assets.quality.clean import FrameContractError
        from marketdata_assets.quality.day_checks import markdown_table
        from marketdata_assets.storage.raw import (
            clear_quarantine_candles,
            read_raw_candles,
            write_quarantine_candles,
        )
        from marketdata_assets.storage.served import write_gap_days, write_served_days

        root = storage_root(settings)
        results: list[PartitionResult] = []
        valid_by_symbol: dict[str, dict[date, pd.DataFrame]] = defaultdict(dict)
        gaps_by_symbol: dict[str, dict[date, pd.DataFrame]] = defaultdict(dict)
        for partition_key in context.partition_keys:
            key, day = split_key(partition_key, SYMBOL)
            symbol = cfg.symbol_for_key(key)
            result = PartitionResult(partition_key, f"{day.isoformat()} {key}")
            results.append(result)
            try:
                raw = read_raw_candles(root, venue, key, day)
                cleaned = clean_partition(raw, day)
            except FileNotFoundError as exc:
                result.fail(
                    f"raw data missing, materialise {raw_candles_key(venue).to_user_string()} first ({exc})"
                )
                continue
            except FrameContractError as exc:
                result.fail(f"raw file cannot be validated: {exc}")
                continue
            if len(cleaned.quarantined):
                write_quarantine_candles(root, venue, key, day, cleaned.quarantined)
            else:
                clear_quarantine_candles(root, venue, key, day)
            gaps = find_gaps(
                cleaned.valid,
                day,
                venue,
                key,
                outage_min_minutes=quality.outage_minutes_for(symbol),
                quarantined=cleaned.quarantined["timestamp"],
            )
            valid_by_symbol[key][day] = cleaned.valid
            gaps_by_symbol[key][day] = gaps
            minutes = gaps.groupby("kind")["minutes"].sum() if len(gaps) else pd.Series(dtype="int64")
            gap_numbers = {
                "outage_minutes": int(minutes.get("outage", 0)),
                "no_trade_minutes": int(minutes.get("no_trades", 0)),
                "filler_minutes": int(minutes.get("filler", 0)),
                "quarantined_minutes": int(minutes.get("quarantined", 0)),
            }
            valid = cleaned.valid
            result.metadata[candles_key] = {
                "rows_fetched": len(raw),
                "rows_valid": len(valid),
                "quarantined_rows": len(cleaned.quarantined),
                "identical_duplicates": cleaned.identical_duplicates,
                "conflicting_duplicates": cleaned.conflicting_duplicates,
                "missing_minutes": 1440 - int(valid["timestamp"].nunique()),
                **gap_numbers,
                "filler_rows": int(filler_mask(valid).sum()) if len(valid) else 0,
                "first_timestamp": valid["timestamp"].iloc[0].isoformat() if len(valid) else "-",
                "last_timestamp": valid["timestamp"].iloc[-1].isoformat() if len(valid) else "-",
            }
            if len(cleaned.quarantined):
                result.metadata[candles_key]["quarantine_reasons"] = (
                    cleaned.quarantined["reason"].value_counts().head(10).to_dict()
                )
            if cleaned.conflicting_duplicates:
                conflicts = cleaned.dedupe.conflicts.head(quality.failure_rows)
                result.metadata[candles_key]["conflicts_md"] = markdown_table(conflicts)
            result.metadata[gap_key] = {"gaps": len(gaps), **gap_numbers}

        for key, frames in valid_by_symbol.items():
            written = write_served_days(root, "1m", venue, key, frames)
            write_gap_days(root, venue, key, gaps_by_symbol[key])
            context.log.info(
                f"{venue} {key}: {len(frames)} days written to "
                + ", ".join(sorted({w.path for w in written}))
            )
        yield from finish(context, results, {candles_key: VALIDATED_COLUMNS, gap_key: GAP_COLUMNS})

    return validated
