"""Freshness checks flag the series whose newest served candle is too old, by name."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from dagster import AssetSelection, materialize
from dagster._core.test_utils import instance_for_test

from marketdata_assets.definitions import build_definitions
from marketdata_assets.defs.freshness import build_freshness_checks, build_freshness_schedule
from marketdata_assets.quality.freshness import freshness
from marketdata_assets_tests.dagster.test_raw_ingestion_e2e import run, sim_settings


def test_freshness_rule() -> None:
    now = pd.Timestamp("2024-03-06T01:00Z")
    assert freshness("s", pd.Timestamp("2024-03-05T23:59Z"), now, timedelta(hours=26)).fresh
    stale = freshness("s", pd.Timestamp("2024-03-04T10:00Z"), now, timedelta(hours=26))
    assert not stale.fresh and "39.0 h old" in stale.describe()
    never = freshness("s", None, now, timedelta(hours=26))
    assert not never.fresh and not never.judged and not never.stale  # a series never served is not judged
    busy = freshness("s", pd.Timestamp("2024-03-04T10:00Z"), now, timedelta(hours=26), backfilling=True)
    assert not busy.stale and "backfill running" in busy.describe()


@pytest.mark.e2e
def test_a_stale_symbol_is_named_and_a_fresh_one_passes(tmp_path: Path, simulator) -> None:
    settings = sim_settings(tmp_path, simulator)
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    keys = ["okx/ohlcv_1m_raw", "okx/ohlcv_1m", "okx/gaps"]
    defs = build_definitions(settings)
    checks = build_freshness_checks(settings)
    with instance_for_test() as instance:
        # BTC is served up to yesterday 23:59, ETH only up to an old day
        assert run(
            settings, keys, f"{yesterday}|BTCUSDT", f"{yesterday}|BTCUSDT", instance, checks=False
        ).success
        eth = run(settings, keys, "2024-03-05|ETHUSDT", "2024-03-05|ETHUSDT", instance, checks=False)
        assert eth.success
        result = materialize(
            [*defs.assets, *checks],
            selection=AssetSelection.checks(*[c for d in checks for c in d.check_keys]),
            resources=defs.resources,
            instance=instance,
        )
    okx = next(e for e in result.get_asset_check_evaluations() if e.asset_key.path[0] == "okx")
    # the evaluation judges okx/ohlcv_1m's latest materialisation (the UI shows it as current)
    assert (
        okx.target_materialization_data is not None and okx.target_materialization_data.run_id == eth.run_id
    )
    assert not okx.passed and okx.severity.value == "WARN"
    assert "1 of 2 series stale: okx ETHUSDT: newest candle 2024-03-05T23:59:00+00:00" in okx.description
    rows = {r.data["series"]: r.data for r in okx.metadata["series"].value.records}
    assert rows["okx BTCUSDT"]["newest candle (UTC)"] == f"{yesterday}T23:59:00+00:00"
    others = [e for e in result.get_asset_check_evaluations() if e.asset_key.path[0] != "okx"]
    # series never served are listed, not judged: their checks pass
    assert others and all("nothing served yet" in e.description and e.passed for e in others)
    assert all(e.target_materialization_data is None for e in others)  # never materialised


def test_the_hourly_schedule_targets_only_the_freshness_checks(tmp_path: Path, simulator) -> None:
    schedule = build_freshness_schedule(sim_settings(tmp_path, simulator))
    assert schedule.cron_schedule == "5 * * * *"
    assert schedule.job_name == "freshness_checks"


@pytest.mark.e2e
def test_a_series_whose_backfill_is_running_is_not_judged(tmp_path: Path, simulator) -> None:
    from dagster import DagsterRunStatus
    from dagster._core.test_utils import create_run_for_test

    from marketdata_assets.defs.automation import refresh_keys

    settings = sim_settings(tmp_path, simulator)
    keys = ["okx/ohlcv_1m_raw", "okx/ohlcv_1m", "okx/gaps"]
    defs = build_definitions(settings)
    checks = build_freshness_checks(settings)
    with instance_for_test() as instance:
        assert run(settings, keys, "2024-03-05|ETHUSDT", "2024-03-05|ETHUSDT", instance, checks=False).success
        create_run_for_test(  # a backfill of okx is running
            instance,
            job_name="refresh_okx",
            status=DagsterRunStatus.STARTED,
            asset_selection=frozenset(refresh_keys("okx")),
        )
        result = materialize(
            [*defs.assets, *checks],
            selection=AssetSelection.checks(*[c for d in checks for c in d.check_keys]),
            resources=defs.resources,
            instance=instance,
        )
    okx = next(e for e in result.get_asset_check_evaluations() if e.asset_key.path[0] == "okx")
    assert okx.passed and "backfill running: not judged" in okx.description
