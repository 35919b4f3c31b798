"""Pieces every asset module shares: partition keys to days, metadata conversion, per-partition results.

A step usually covers a range of partitions (``BackfillPolicy.single_run``). Dagster records one
materialisation per partition of the range with the step's metadata, whatever the body does, so a step
whose partitions all succeed returns totals plus a per-partition table; a step where some partitions
fail records the good ones one by one (with their own numbers) and fails naming the others
(:func:`finish`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
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
from marketdata_assets.quality.tables import markdown_rows


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


def range_metadata(results: Sequence[PartitionResult], asset_key: AssetKey, columns: Sequence[str]) -> dict:
    """One partition: its own metadata. Several: integer totals of ``columns`` plus a table."""
    rows = [r.metadata.get(asset_key, {}) for r in results]
    if len(results) == 1:
        return to_metadata(rows[0])
    totals: dict[str, Any] = {"partitions": len(results)}
    for column in columns:
        values = [row.get(column) for row in rows]
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            totals[column] = sum(values)
    totals["per_partition_md"] = markdown_rows(
        ["partition", *columns],
        (
            [result.label, *(_cell(row.get(c)) for c in columns)]
            for result, row in zip(results, rows, strict=True)
        ),
    )
    return to_metadata(totals)


def finish(
    context: AssetExecutionContext,
    results: Sequence[PartitionResult],
    columns_by_key: Mapping[AssetKey, Sequence[str]],
) -> list[MaterializeResult]:
    """Materialisations for a step's partitions (one per asset key, with ``columns_by_key[key]`` in the
    per-partition table); raises :class:`Failure` naming the failed partitions."""
    keys = list(columns_by_key)
    failed = [r for r in results if not r.ok]
    if not failed:
        return [
            MaterializeResult(asset_key=key, metadata=range_metadata(results, key, columns_by_key[key]))
            for key in keys
        ]
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


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value).replace("|", "/")
