"""Dagster partition definitions: UTC day x symbol per candle venue, UTC day x currency for DVOL.

Dagster allows two dimensions at most, so the venue is not a dimension: each venue has its own
assets (and its own pool for rate limits). Day partitions end at yesterday: a day still in
progress is never a partition. The key format itself is :mod:`marketdata_assets.universe`'s.
"""

from __future__ import annotations

from datetime import date

from dagster import (
    BackfillPolicy,
    DailyPartitionsDefinition,
    MultiPartitionKey,
    MultiPartitionsDefinition,
    StaticPartitionsDefinition,
)

from marketdata_assets.settings import DvolSettings, VenueSettings
from marketdata_assets.universe import (
    CURRENCY,
    DATE,
    MAX_DAYS_PER_RUN,
    PARTITION_NAME_TAG,
    PARTITION_RANGE_END_TAG,
    PARTITION_RANGE_START_TAG,
    SYMBOL,
    instrument_dimension,
    split_partition_key,
)

__all__ = [
    "backfill_policy",
    "CURRENCY",
    "DATE",
    "PARTITION_NAME_TAG",
    "PARTITION_RANGE_END_TAG",
    "PARTITION_RANGE_START_TAG",
    "SYMBOL",
    "candle_partitions",
    "dvol_partitions",
    "multi_key",
    "split_key",
]


def backfill_policy() -> BackfillPolicy:
    """How a UI backfill is cut into runs: at most ``MAX_DAYS_PER_RUN`` partitions each (the terminal
    backfill cuts the same way, month by month), so a multi-year backfill starts at once and its runs
    each write a bounded number of events."""
    return BackfillPolicy.multi_run(max_partitions_per_run=MAX_DAYS_PER_RUN)


def daily(start: date) -> DailyPartitionsDefinition:
    return DailyPartitionsDefinition(start_date=start.isoformat(), timezone="UTC", end_offset=0)


def candle_partitions(cfg: VenueSettings) -> MultiPartitionsDefinition:
    return MultiPartitionsDefinition(
        {DATE: daily(cfg.start_date), SYMBOL: StaticPartitionsDefinition(cfg.symbol_keys)}
    )


def dvol_partitions(cfg: DvolSettings) -> MultiPartitionsDefinition:
    return MultiPartitionsDefinition(
        {DATE: daily(cfg.start_date), CURRENCY: StaticPartitionsDefinition(cfg.currencies)}
    )


def split_key(venue: str, key: str | MultiPartitionKey) -> tuple[str, date]:
    """(symbol or currency key, day) of one of ``venue``'s partition keys."""
    if isinstance(key, MultiPartitionKey):
        dims = key.keys_by_dimension
        return dims[instrument_dimension(venue)], date.fromisoformat(dims[DATE])
    return split_partition_key(venue, key)


def multi_key(venue: str, day: date, instrument_key: str) -> MultiPartitionKey:
    return MultiPartitionKey({DATE: day.isoformat(), instrument_dimension(venue): instrument_key})
