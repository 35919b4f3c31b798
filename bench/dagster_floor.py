"""Dagster alone, in the shape of one venue's refresh: what a backfill costs before any candle work.

The same partitioned assets and checks as ``refresh_<venue>`` (raw 1m; validated 1m + gaps; 5m, 15m, 1h,
4h, 1d; two checks on raw and two on validated, one evaluation per partition each), bodies that do nothing
but attach one number per partition, executed like ``marketdata backfill`` executes: in-process
``execute_job`` runs of at most 31 days per symbol, on the project's embedded SQLite instance
(``dagster_home/dagster.yaml``; ``--storage stock`` for Dagster's own SQLite storage). ``backfill_cpu`` runs it
beside the project and the plain script: the project's marginal CPU per symbol-day minus this one is what
our own code costs; this one is what Dagster's bookkeeping costs (docs/BENCHMARKS.md).

    python -m bench.dagster_floor --symbols 3 --days 30 --home /tmp/floor-home
    python -m bench.dagster_floor --symbols 3 --days 30 --home /tmp/floor-stock --storage stock
"""

from __future__ import annotations

import argparse
import os
import shutil
import warnings
from datetime import date, timedelta
from pathlib import Path

from dagster import (
    AssetCheckEvaluation,
    AssetCheckSpec,
    AssetKey,
    AssetSpec,
    BackfillPolicy,
    DagsterInstance,
    DailyPartitionsDefinition,
    Definitions,
    MaterializeResult,
    MultiPartitionsDefinition,
    Output,
    StaticPartitionsDefinition,
    asset,
    define_asset_job,
    execute_job,
    in_process_executor,
    multi_asset,
    multi_asset_check,
    reconstructable,
)

SYMBOLS = [f"SYM{i}" for i in range(10)]
START = date(2024, 3, 1)
PARTITIONS = MultiPartitionsDefinition(
    {"date": DailyPartitionsDefinition(START.isoformat()), "symbol": StaticPartitionsDefinition(SYMBOLS)}
)
POLICY = BackfillPolicy.multi_run(max_partitions_per_run=31)
RAW, ONE_MINUTE, GAPS = (
    AssetKey(["floor", "ohlcv_1m_raw"]),
    AssetKey(["floor", "ohlcv_1m"]),
    AssetKey(["floor", "gaps"]),
)
TIMEFRAMES = ("5m", "15m", "1h", "4h", "1d")


@asset(key=RAW, partitions_def=PARTITIONS, backfill_policy=POLICY)
def raw(context) -> MaterializeResult:  # noqa: ANN001
    for key in context.partition_keys:
        context.add_asset_metadata({"rows": 1440}, partition_key=key)
    return MaterializeResult()


@multi_asset(
    specs=[AssetSpec(ONE_MINUTE, deps=[RAW]), AssetSpec(GAPS, deps=[RAW])],
    partitions_def=PARTITIONS,
    backfill_policy=POLICY,
)
def validated(context):  # noqa: ANN001, ANN201
    for asset_key in (ONE_MINUTE, GAPS):
        for key in context.partition_keys:
            context.add_asset_metadata({"rows": 1440}, asset_key=asset_key, partition_key=key)
        yield MaterializeResult(asset_key=asset_key)


@multi_asset(
    specs=[AssetSpec(["floor", f"ohlcv_{tf}"], deps=[ONE_MINUTE]) for tf in TIMEFRAMES],
    partitions_def=PARTITIONS,
    backfill_policy=POLICY,
)
def resampled(context):  # noqa: ANN001, ANN201
    for tf in TIMEFRAMES:
        asset_key = AssetKey(["floor", f"ohlcv_{tf}"])
        for key in context.partition_keys:
            context.add_asset_metadata({"bins": 24}, asset_key=asset_key, partition_key=key)
        yield MaterializeResult(asset_key=asset_key)


def day_checks(target: AssetKey, name: str):  # noqa: ANN201
    @multi_asset_check(
        specs=[
            AssetCheckSpec(check, asset=target, partitions_def=PARTITIONS) for check in ("valid", "complete")
        ],
        name=name,
    )
    def checks(context):  # noqa: ANN001, ANN202
        op = context.op_execution_context
        for key in context.partition_keys:
            for check in ("valid", "complete"):
                op.log_event(
                    AssetCheckEvaluation(asset_key=target, check_name=check, passed=True, partition=key)
                )
        for check_key in context.selected_asset_check_keys:
            yield Output(None, output_name=op.assets_def.get_output_name_for_asset_check_key(check_key))

    return checks


defs = Definitions(
    assets=[raw, validated, resampled],
    asset_checks=[day_checks(RAW, "raw_checks"), day_checks(ONE_MINUTE, "validated_checks")],
    jobs=[define_asset_job("refresh_floor", executor_def=in_process_executor)],  # as refresh_<venue>
)


def refresh_job():  # noqa: ANN201 - the reconstructable job of each run
    return defs.resolve_job_def("refresh_floor")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=1)
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--start", type=date.fromisoformat, default=START)
    parser.add_argument("--home", type=Path, required=True, help="the SQLite instance's directory")
    parser.add_argument(
        "--storage",
        choices=["embedded", "stock"],
        default="embedded",
        help="embedded: the project's dagster_home/dagster.yaml (pooled SQLite engines); stock: Dagster's own",
    )
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    from dagster._core.instance.ref import InstanceRef  # an instance in a directory of our choice
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    args.home.mkdir(parents=True, exist_ok=True)
    config = args.home / "dagster.yaml"
    if args.storage == "embedded":
        shutil.copyfile(Path(__file__).resolve().parents[1] / "dagster_home" / "dagster.yaml", config)
        os.environ["DAGSTER_HOME"] = str(args.home.resolve())  # the config's base_dir
    else:
        config.write_text("telemetry:\n  enabled: false\n")  # storage: Dagster's default SQLite
    instance = DagsterInstance.from_ref(InstanceRef.from_dir(str(args.home)))
    first = args.start
    last_day = args.start + timedelta(days=args.days - 1)
    while first <= last_day:
        last = min(last_day, first + timedelta(days=30))
        for symbol in SYMBOLS[: args.symbols]:
            tags = {
                ASSET_PARTITION_RANGE_START_TAG: f"{first.isoformat()}|{symbol}",
                ASSET_PARTITION_RANGE_END_TAG: f"{last.isoformat()}|{symbol}",
            }
            result = execute_job(
                reconstructable(refresh_job),
                instance,
                tags=tags,
                run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},  # as ours
                raise_on_error=True,
            )
            assert result.success
        first = last + timedelta(days=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
