"""Partitioned asset checks on the raw and validated candles and on raw DVOL (one evaluation per day).

The rules live in :mod:`marketdata_assets.quality.day_checks`. The raw and DVOL checks read the stored
raw day and apply them; the validated checks report the verdict the validate step stored beside each
day (:mod:`marketdata_assets.pipeline.validate`), so a validated day is validated once, not again here.
Checks are partitioned (``@multi_asset_check(partitions_def=...)``, a preview feature in
Dagster 1.13) and behave like this, pinned by ``marketdata_assets_tests/dagster/test_quality_serving_e2e.py``:

* a run of **one partition** yields ordinary check results: a failing blocking check with ERROR
  severity makes Dagster skip everything downstream of the asset for that run;
* a run over a **range** (every backfill run covers one) would otherwise get a single
  evaluation without a partition, so the check logs one evaluation per partition (each targeting that
  partition's latest materialisation), visible per partition in the UI. Blocking per partition in such
  runs is enforced by the resampling step itself, which applies the same rules day by day.

The five rules are shown as two checks per layer (``quality.day_checks.CHECK_GROUPS``: every check
evaluation is one event-log write per partition, the bulk of a backfill's cost): ``valid`` reports schema,
duplicates and ohlc, ``complete`` reports completeness and continuity; each names every rule in its
description and keeps each rule's numbers in its metadata (``rules``, ``ohlc_failures``, ...).

Severity: ``valid`` on the validated layer is ERROR and blocking; the raw and DVOL checks are never
blocking (the validate and DVOL steps keep failing rows out on their own); on the raw layer they are WARN
(the validated step quarantines those rows) unless the day cannot be read as candles at all.
``complete`` is always WARN, with its numbers. DVOL has ``valid`` only.
"""

from collections import defaultdict
from collections.abc import Iterator, Mapping
from typing import Any

from dagster import (
    AssetCheckEvaluation,
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    AssetRecordsFilter,
    Output,
    multi_asset_check,
)

# Private Dagster API: a check evaluation logged per partition of a ranged run must name the
# materialisation it judges (so the UI shows it as current), and Dagster exports no public type for that
# target. Pinned by marketdata_assets_tests/dagster/test_definitions_snapshot.py (the import) and
# test_quality_serving_e2e.py (the evaluations are current per partition).
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

from marketdata_assets.defs.common import days_by_instrument, to_metadata
from marketdata_assets.defs.partitions import candle_partitions, dvol_partitions, split_key
from marketdata_assets.defs.raw import DVOL_RAW_KEY, raw_candles_key
from marketdata_assets.defs.resources import StorageResource
from marketdata_assets.defs.validated import validated_candles_key
from marketdata_assets.quality.day_checks import (
    CHECK_GROUPS,
    ERROR,
    CheckOutcome,
    group_outcomes,
)
from marketdata_assets.settings import LoadedSettings
from marketdata_assets.universe import DVOL_VENUE

RULE_DESCRIPTIONS = {
    "schema": "dtypes, UTC minute alignment, prices > 0, volume >= 0, no NaN/inf, inside the day",
    "duplicates": "one row per timestamp (identical page-edge copies are normal in raw data)",
    "ohlc": "high >= max(open, close) and low <= min(open, close)",
    "completeness": "1440 minutes expected; missing minutes reported as UTC ranges",
    "continuity": "close-to-close moves above the configured threshold, with their timestamps",
}
# The blocking group: on the validated layer a failing ``valid`` (ERROR) keeps the day out of resampling.
BLOCKING_GROUP = "valid"


def check_description(group: str) -> str:
    """A grouped check's description: each of its rules and what it checks."""
    return "; ".join(f"{rule}: {RULE_DESCRIPTIONS[rule]}" for rule in CHECK_GROUPS[group])


Outcomes = dict[str, CheckOutcome]


def build_candle_checks(settings: LoadedSettings, venue: str) -> list:
    """The raw and the validated check sets of one venue."""
    cfg = settings.venues[venue]
    partitions = candle_partitions(cfg)
    raw_key, valid_key = raw_candles_key(venue), validated_candles_key(venue)

    def specs(asset_key: AssetKey, blocking: bool) -> list[AssetCheckSpec]:
        return [
            AssetCheckSpec(
                group,
                asset=asset_key,
                partitions_def=partitions,
                blocking=blocking and group == BLOCKING_GROUP,
                description=check_description(group),
            )
            for group in CHECK_GROUPS
        ]

    # Raw checks never block: a raw day whose rows fail is quarantined row by row by the validate step,
    # and a day that cannot be read as candles at all fails the validate step itself.
    @multi_asset_check(specs=specs(raw_key, blocking=False), name=f"{venue}_raw_candle_checks")
    def raw_checks(context: AssetCheckExecutionContext, storage: StorageResource) -> Iterator[Any]:
        from marketdata_assets.quality.day_checks import raw_day_checks
        from marketdata_assets.storage.raw import read_raw_candles

        root = storage.root()
        outcomes: dict[str, Outcomes] = {}
        for partition_key in context.partition_keys:
            key, day = split_key(venue, partition_key)
            try:
                raw = read_raw_candles(root, venue, key, day)
            except FileNotFoundError as exc:
                outcomes[partition_key] = _missing(str(exc))
                continue
            policy = settings.quality.check_policy(cfg.symbol_for_key(key))
            outcomes[partition_key] = group_outcomes(raw_day_checks(raw, day, policy))
        yield from emit_checks(context, raw_key, outcomes)

    @multi_asset_check(specs=specs(valid_key, blocking=True), name=f"{venue}_validated_candle_checks")
    def validated_checks(context: AssetCheckExecutionContext, storage: StorageResource) -> Iterator[Any]:
        from marketdata_assets.pipeline.validate import read_day_verdict

        root = storage.root()
        outcomes: dict[str, Outcomes] = {}
        for key, items in days_by_instrument(venue, context.partition_keys).items():
            for partition_key, day in items:
                verdict = read_day_verdict(root, venue, key, day)
                if verdict is None:
                    outcomes[partition_key] = _missing(
                        f"{venue} {key} {day.isoformat()} has no stored verdict: validate the day first"
                    )
                else:
                    outcomes[partition_key] = group_outcomes(verdict.checks)
        yield from emit_checks(context, valid_key, outcomes)

    return [raw_checks, validated_checks]


def build_dvol_checks(settings: LoadedSettings) -> list:
    cfg = settings.dvol
    assert cfg is not None
    partitions = dvol_partitions(cfg)
    names = ("valid",)  # schema, duplicates, ohlc: DVOL has no 1440-minute day to be complete

    @multi_asset_check(
        specs=[
            AssetCheckSpec(
                group,
                asset=DVOL_RAW_KEY,
                partitions_def=partitions,
                blocking=False,  # rows that fail are left out of the served DVOL; a broken day fails it
                description=check_description(group).replace("minute alignment", "second alignment"),
            )
            for group in names
        ],
        name="deribit_dvol_raw_checks",
    )
    def dvol_checks(context: AssetCheckExecutionContext, storage: StorageResource) -> Iterator[Any]:
        from marketdata_assets.quality.day_checks import dvol_day_checks
        from marketdata_assets.storage.raw import read_raw_dvol

        root = storage.root()
        policy = settings.quality.check_policy()
        outcomes: dict[str, Outcomes] = {}
        for partition_key in context.partition_keys:
            currency, day = split_key(DVOL_VENUE, partition_key)
            try:
                raw = read_raw_dvol(root, currency, day)
            except FileNotFoundError as exc:
                outcomes[partition_key] = _missing(str(exc), names)
                continue
            outcomes[partition_key] = group_outcomes(dvol_day_checks(raw, day, policy))
        yield from emit_checks(context, DVOL_RAW_KEY, outcomes)

    return [dvol_checks]


def emit_checks(
    context: AssetCheckExecutionContext, asset_key: AssetKey, outcomes: Mapping[str, Outcomes]
) -> Iterator[Any]:
    """Check results for one partition, or one logged evaluation per partition for a range."""
    selected = sorted(k for k in context.selected_asset_check_keys if k.asset_key == asset_key)
    assets_def = context.op_execution_context.assets_def
    if context.has_partition_key:
        per_check = outcomes[context.partition_key]
        for check_key in selected:
            outcome = per_check[check_key.name]
            yield AssetCheckResult(
                asset_key=asset_key,
                check_name=check_key.name,
                passed=outcome.passed,
                severity=_severity(outcome),
                description=outcome.description,
                metadata=to_metadata(outcome.metadata),
            )
        return
    targets = _latest_materializations(context, asset_key, list(outcomes))
    failed: dict[str, list[str]] = defaultdict(list)
    for partition_key, per_check in outcomes.items():
        for check_key in selected:
            outcome = per_check[check_key.name]
            if not outcome.passed:
                failed[check_key.name].append(partition_key)
            context.op_execution_context.log_event(
                AssetCheckEvaluation(
                    asset_key=asset_key,
                    check_name=check_key.name,
                    passed=outcome.passed,
                    metadata=to_metadata(outcome.metadata),
                    target_materialization_data=targets.get(partition_key),
                    severity=_severity(outcome),
                    description=outcome.description,
                    blocking=assets_def.get_spec_for_check_key(check_key).blocking,
                    partition=partition_key,
                )
            )
    for name, partitions in failed.items():
        context.log.info(
            f"{asset_key.to_user_string()} {name}: {len(partitions)} of {len(outcomes)} partitions fail: "
            + ", ".join(partitions[:20])
        )
    # The checks' outputs carry no value; the evaluations above are the results.
    for check_key in selected:
        yield Output(None, output_name=assets_def.get_output_name_for_asset_check_key(check_key))


def _latest_materializations(
    context: AssetCheckExecutionContext, asset_key: AssetKey, partition_keys: list[str]
) -> dict[str, AssetCheckEvaluationTargetMaterializationData]:
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=asset_key, asset_partitions=partition_keys),
        limit=max(len(partition_keys) * 4, 100),
    ).records
    latest: dict[str, AssetCheckEvaluationTargetMaterializationData] = {}
    for record in records:  # newest first
        if record.partition_key is not None and record.partition_key not in latest:
            latest[record.partition_key] = AssetCheckEvaluationTargetMaterializationData(
                storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp
            )
    return latest


def _severity(outcome: CheckOutcome) -> AssetCheckSeverity:
    return AssetCheckSeverity.ERROR if outcome.severity == ERROR else AssetCheckSeverity.WARN


def _missing(message: str, names: tuple[str, ...] = tuple(CHECK_GROUPS)) -> Outcomes:
    return {
        name: CheckOutcome(name, passed=False, severity=ERROR, description=f"no stored data: {message}")
        for name in names
    }
