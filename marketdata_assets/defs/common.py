"""Pieces every asset module shares: partition keys to days, metadata conversion, per-partition results.

A step usually covers a range of partitions (up to ``MAX_DAYS_PER_RUN`` days, the assets' backfill
policy). Dagster records one materialisation per partition of the range; :func:`finish` attaches each
day's own numbers to its partition, or, when some partitions fail, records the good ones one by one and
fails naming the others.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    Failure,
    MaterializeResult,
    MetadataValue,
)

from marketdata_assets.defs.partitions import split_key
from marketdata_assets.pipeline.outcome import DayOutcome
from marketdata_assets.quality.tables import is_table


def days_by_instrument(venue: str, partition_keys: Sequence[str]) -> dict[str, list[tuple[str, date]]]:
    """A run's partition keys grouped by instrument: ``{symbol or currency: [(partition key, day)]}``, in
    the order of the run."""
    grouped: dict[str, list[tuple[str, date]]] = defaultdict(list)
    for partition_key in partition_keys:
        instrument, day = split_key(venue, partition_key)
        grouped[instrument].append((partition_key, day))
    return dict(grouped)


def results_from_outcomes(
    items: Sequence[tuple[str, date]], outcomes: Sequence[DayOutcome], keys: Mapping[str, AssetKey]
) -> list[PartitionResult]:
    """The pipeline's day outcomes as partition results: ``keys`` maps each output of the step (``1m``,
    ``gaps``, a timeframe) to its asset key."""
    results = []
    for (partition_key, day), outcome in zip(items, outcomes, strict=True):
        assert outcome.day == day, f"outcome of {outcome.day} for partition {partition_key}"
        results.append(
            PartitionResult(
                partition_key,
                outcome.label,
                ok=outcome.ok,
                error=outcome.error,
                metadata={keys[name]: numbers for name, numbers in outcome.numbers.items() if name in keys},
            )
        )
    return results


def metadata_value(key: str, value: Any) -> Any:
    """Plain values to Dagster metadata: ``*_md`` keys are markdown, dicts and lists JSON, paths paths."""
    if isinstance(value, MetadataValue):
        return value
    if is_table(value):
        return _table_value(value)
    if key.endswith("_md"):
        return MetadataValue.md(str(value))
    if key == "path" or key.endswith("_path"):
        return MetadataValue.path(str(value))
    if isinstance(value, bool):
        return MetadataValue.bool(value)
    if isinstance(value, int):
        return MetadataValue.int(value)
    if isinstance(value, float):
        return MetadataValue.float(value)
    if isinstance(value, (dict, list)):
        return MetadataValue.json(value)
    return MetadataValue.text(str(value))


def to_metadata(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: metadata_value(key, value) for key, value in values.items()}


@dataclass
class PartitionResult:
    """What one partition of a step produced, per asset key it materialises."""

    partition_key: str
    label: str
    ok: bool = True
    error: str | None = None
    metadata: dict[AssetKey, dict[str, Any]] = field(default_factory=dict)

    def fail(self, error: str) -> PartitionResult:
        self.ok = False
        self.error = error
        return self


def finish(
    context: AssetExecutionContext, results: Sequence[PartitionResult], keys: Sequence[AssetKey]
) -> Iterator[MaterializeResult]:
    """Record a step's partitions, each with its own numbers; raise :class:`Failure` naming the failed ones.

    * Every partition succeeded (one day, or a range: every backfill runs ranges): each day's numbers are
      attached to its own partition with ``context.add_asset_metadata(..., partition_key=...)``, then one
      output per asset key. Dagster writes exactly one materialisation per partition, carrying that
      day's numbers and nothing copied from another day (pinned by
      ``marketdata_assets_tests/dagster/test_partition_metadata_e2e.py``). One event per partition and
      asset is what a backfill's cost is made of (docs/BENCHMARKS.md), so nothing else is logged.
    * Some partitions failed: no outputs (the failed days must not be recorded as materialised); every
      day that succeeded is logged as an ``AssetMaterialization`` of its partition with its numbers, and
      the step fails listing the others.
    """
    failed = [r for r in results if not r.ok]
    if not failed:
        for result in results:
            for key in keys:
                metadata = to_metadata(result.metadata.get(key, {}))
                context.add_asset_metadata(metadata, asset_key=key, partition_key=result.partition_key)
        for key in keys:
            yield MaterializeResult(asset_key=key)
        return
    for result in results:
        if result.ok:
            for key in keys:
                context.log_event(
                    AssetMaterialization(
                        asset_key=key,
                        partition=result.partition_key,
                        metadata=to_metadata(result.metadata.get(key, {})),
                    )
                )
    listing = "\n".join(f"- {r.label}: {r.error}" for r in failed)
    raise Failure(
        description=(
            f"{len(failed)} of {len(results)} partitions failed "
            f"({len(results) - len(failed)} succeeded and were recorded):\n{listing}"
        ),
        metadata={"failed_partitions": MetadataValue.md(listing)},
    )


def _table_value(value: dict[str, list]) -> MetadataValue:
    """``{"columns", "rows"}`` data as Dagster table metadata, each column typed from its values."""
    from dagster import TableColumn, TableRecord, TableSchema

    columns = value["columns"]

    def kind(index: int) -> str:
        cells = [row[index] for row in value["rows"] if row[index] is not None]
        for name, types in (("bool", (bool,)), ("int", (int,)), ("float", (int, float))):
            if cells and all(
                isinstance(c, types) and (name == "bool" or not isinstance(c, bool)) for c in cells
            ):
                return name
        return "string"

    schema = TableSchema(columns=[TableColumn(name, kind(i)) for i, name in enumerate(columns)])
    records = [TableRecord(dict(zip(columns, row, strict=True))) for row in value["rows"]]
    return MetadataValue.table(records=records, schema=schema)
