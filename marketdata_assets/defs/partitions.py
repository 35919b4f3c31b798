"""Partitions: UTC day x symbol per candle venue, UTC day x currency for DVOL.

Dagster allows two dimensions at most, so the venue is not a dimension: each venue has its own
assets (and its own pool for rate limits). Day partitions end at yesterday: a day still in
progress is never a partition.
"""

from __future__ import annotations

from datetime import date

from dagster import (
    DailyPartitionsDefinition,
    MultiPartitionKey,
    MultiPartitionsDefinition,
    StaticPartitionsDefinition,
)

from marketdata_assets.settings import DvolSettings, VenueSettings

DATE = "date"
SYMBOL = "symbol"
CURRENCY = "currency"


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


def split_key(key: str | MultiPartitionKey, other: str) -> tuple[str, date]:
    """(symbol or currency key, day) of a two-dimensional partition key."""
    dims = key.keys_by_dimension if isinstance(key, MultiPartitionKey) else _parse(key, other)
    return dims[other], date.fromisoformat(dims[DATE])


def _parse(key: str, other: str) -> dict[str, str]:
    # MultiPartitionsDefinition orders dimensions by name: "currency|date", "date|symbol".
    first, second = key.split("|")
    names = sorted([DATE, other])
    return dict(zip(names, (first, second), strict=True))


def multi_key(day: date, other_name: str, other: str) -> MultiPartitionKey:
    return MultiPartitionKey({DATE: day.isoformat(), other_name: other})
