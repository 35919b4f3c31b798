"""Each partition shows that day's own numbers, in ranged runs too (the backfill case).

The steps attach each day's numbers to its own partition (``add_asset_metadata(partition_key=...)``,
defs/common.py::finish), so the one materialisation Dagster writes per partition holds that day's rows,
first/last candle and missing minutes with their UTC ranges, and nothing copied from the run.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import AssetKey, AssetRecordsFilter
from dagster._core.test_utils import instance_for_test

from marketdata_assets_tests.dagster.test_quality_serving_e2e import CHAIN
from marketdata_assets_tests.dagster.test_raw_ingestion_e2e import run, sim_settings

pytestmark = pytest.mark.e2e


def latest(instance, key: str, partition: str) -> dict:  # noqa: ANN001
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey.from_user_string(key), asset_partitions=[partition]), limit=1
    ).records
    assert records, f"{key} {partition} was not materialised"
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def test_every_day_of_a_ranged_run_shows_its_own_numbers(tmp_path: Path, make_simulator) -> None:
    sim = make_simulator(seed=11, limits_enabled=False)
    # one day loses 30 minutes to a venue-wide outage; its neighbours are whole
    sim.add_fault("binance:outage:start=2024-03-05T10:00,end=2024-03-05T10:30")
    settings = sim_settings(tmp_path, sim)
    with instance_for_test() as instance:
        result = run(settings, CHAIN, "2024-03-04|BTCUSDT", "2024-03-06|ETHUSDT", instance)
        assert result.success
        days = [f"2024-03-0{d}|{s}" for d in (4, 5, 6) for s in ("BTCUSDT", "ETHUSDT")]
        raw = {day: latest(instance, "binance/ohlcv_1m_raw", day) for day in days}
        valid = {day: latest(instance, "binance/ohlcv_1m", day) for day in days}
        hourly = latest(instance, "binance/ohlcv_1h", "2024-03-05|ETHUSDT")
        # one materialisation per partition and asset: the day's numbers ride on Dagster's own event
        # (nothing copied, nothing logged twice: each event is a backfill's cost)
        for key in CHAIN:
            records = instance.fetch_materializations(
                AssetRecordsFilter(asset_key=AssetKey.from_user_string(key), asset_partitions=days), limit=100
            ).records
            assert sorted(r.partition_key for r in records) == sorted(days), key

    holes = {"2024-03-05|BTCUSDT", "2024-03-05|ETHUSDT"}
    for day in days:
        first, symbol = day.split("|")
        assert raw[day]["first_timestamp"].startswith(first), (day, raw[day])
        assert raw[day]["source_url"].startswith(sim.url) and raw[day]["path"].endswith("data.parquet")
        assert "run_partitions" not in raw[day]
        if day in holes:
            assert raw[day]["rows"] == 1440 - 30 and raw[day]["missing_minutes"] == 30
            assert raw[day]["missing_ranges_utc"] == "10:00-10:30"
            assert valid[day]["rows_valid"] == 1410 and valid[day]["outage_minutes"] == 30
        else:
            assert raw[day]["rows"] == 1440 and raw[day]["missing_minutes"] == 0, (day, raw[day])
            assert raw[day]["missing_ranges_utc"] == "none"
            assert valid[day]["rows_valid"] == 1440 and valid[day]["outage_minutes"] == 0
    assert hourly == {"bins": 24, "incomplete_bins": 1}
