"""A backfill launched the way the UI launches it (an asset backfill driven by the daemon's iteration)
is batched by the assets' backfill policy: 31 days x 3 symbols of one venue makes at most 6 runs, and a
long range is cut into runs of at most 31 partitions."""

from __future__ import annotations

import logging
import textwrap
import time
from datetime import date, timedelta
from pathlib import Path

import pytest
from dagster import AssetKey
from dagster._core.execution.backfill import PartitionBackfill
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.test_utils import create_test_daemon_workspace_context, instance_for_test
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.utils import make_new_backfill_id
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.backfill import execute_backfill_iteration

CONFIG = """
environment: uitest
storage:
  root: data
venues:
  binance:
    symbols: [BTC/USDT, ETH/USDT, SOL/USDT]
    start_date: 2024-01-01
    base_url: http://127.0.0.1:9/binance
"""


@pytest.fixture
def code_location(tmp_path: Path) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(textwrap.dedent(CONFIG))
    module = tmp_path / "defs_for_test.py"
    module.write_text(
        "from marketdata_assets.definitions import build_definitions\n"
        "from marketdata_assets.settings import load_settings\n"
        f"defs = build_definitions(load_settings({str(config)!r}))\n"
    )
    return module


def _launch(code_location: Path, partitions: list[str]) -> list:
    """The runs the backfill daemon submits for ``partitions`` of ``binance/ohlcv_1m_raw`` (queued, never
    launched)."""
    overrides = {
        "run_coordinator": {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator"}
    }
    with instance_for_test(overrides=overrides) as instance:
        target = InProcessWorkspaceLoadTarget(
            InProcessCodeLocationOrigin(
                LoadableTargetOrigin(python_file=str(code_location), attribute="defs")
            )
        )
        with create_test_daemon_workspace_context(target, instance) as context:
            key = AssetKey(["binance", "ohlcv_1m_raw"])
            asset_graph = context.create_request_context().asset_graph
            backfill = PartitionBackfill.from_asset_partitions(
                backfill_id=make_new_backfill_id(),
                asset_graph=asset_graph,
                partition_names=partitions,
                asset_selection=[key],
                backfill_timestamp=time.time(),
                tags={},
                dynamic_partitions_store=instance,
                all_partitions=False,
                title=None,
                description=None,
                run_config=None,
            )
            instance.add_backfill(backfill)
            for _ in range(3):
                list(execute_backfill_iteration(context, logging.getLogger("test")))
            return list(instance.get_runs())


def test_ui_backfill_of_31_days_by_3_symbols_is_at_most_6_runs(code_location: Path) -> None:
    partitions = [
        f"2024-01-{day:02d}|{symbol}" for day in range(1, 32) for symbol in ("BTCUSDT", "ETHUSDT", "SOLUSDT")
    ]
    runs = _launch(code_location, partitions)
    _assert_runs_cover(runs, partitions)
    assert 1 <= len(runs) <= 6, f"{len(runs)} runs"


def test_a_long_ui_backfill_is_cut_into_runs_of_at_most_31_partitions(code_location: Path) -> None:
    # 40 days x 3 symbols: one run of all 120 (or of years) would stall before its first request (the long-range case)
    days = [date(2024, 1, 1) + timedelta(days=i) for i in range(40)]
    partitions = [
        f"{day.isoformat()}|{symbol}" for day in days for symbol in ("BTCUSDT", "ETHUSDT", "SOLUSDT")
    ]
    runs = _launch(code_location, partitions)
    sizes = _assert_runs_cover(runs, partitions)
    assert max(sizes) <= 31 and len(runs) >= 4, sizes


def _assert_runs_cover(runs: list, partitions: list[str]) -> list[int]:
    """Every requested partition is in exactly one run's range (expanded by Dagster's own definition)."""
    from dagster import PartitionKeyRange

    from marketdata_assets.defs.partitions import candle_partitions
    from marketdata_assets.settings import VenueSettings

    parts = candle_partitions(
        VenueSettings(symbols=["BTC/USDT", "ETH/USDT", "SOL/USDT"], start_date="2024-01-01")
    )
    covered: list[str] = []
    sizes: list[int] = []
    for run in runs:
        key_range = PartitionKeyRange(
            run.tags["dagster/asset_partition_range_start"], run.tags["dagster/asset_partition_range_end"]
        )
        keys = parts.get_partition_keys_in_range(key_range)
        sizes.append(len(keys))
        covered += keys
    assert sorted(covered) == sorted(partitions)
    return sizes
