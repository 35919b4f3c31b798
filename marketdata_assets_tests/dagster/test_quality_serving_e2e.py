"""Raw -> validated -> resampled -> served through real Dagster runs against the simulator.

Also pins how Dagster 1.13's partitioned asset checks (a preview feature) behave for us: one
evaluation per partition in ranged runs, targeting that partition's materialisation; native blocking
in single-partition runs; per-day blocking by the resampling step in ranged runs.
"""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from dagster import AssetCheckKey, AssetKey, DagsterEventType
from dagster._core.test_utils import instance_for_test

from marketdata_assets.client import MarketDataClient
from marketdata_assets.storage.raw import read_quarantine_candles
from marketdata_assets.storage.root import StorageRoot
from marketdata_assets.storage.served import read_gaps, read_served_candles
from marketdata_assets_tests.dagster.test_raw_ingestion_e2e import partition_metadata, run, sim_settings

pytestmark = pytest.mark.e2e

CHAIN = ["binance/ohlcv_1m_raw", "binance/ohlcv_1m", "binance/gaps"] + [
    f"binance/ohlcv_{tf}" for tf in ("5m", "15m", "1h", "4h", "1d")
]
BAD = "2024-03-05|ETHUSDT"


def evaluations(result, asset: str, check: str) -> dict[str | None, object]:
    return {
        e.partition: e
        for e in result.get_asset_check_evaluations()
        if e.asset_key == AssetKey.from_user_string(asset) and e.check_name == check
    }


def materialized_partitions(instance, key: str) -> set[str]:
    return set(partition_metadata(instance, key))


def test_a_bad_day_is_held_back_while_the_rest_of_the_range_is_served(tmp_path: Path, make_simulator) -> None:
    sim = make_simulator(seed=5)
    sim.add_fault("binance:invalid:rows=1,symbol=ETH/USDT,day=2024-03-05")
    settings = sim_settings(tmp_path, sim)
    root = StorageRoot.from_uri(settings.storage_root)
    with instance_for_test() as instance:
        result = run(settings, CHAIN, "2024-03-04|BTCUSDT", "2024-03-05|ETHUSDT", instance)
        assert not result.success  # the bad day fails its resampling partition, by name
        failure = next(e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE)
        assert failure.step_key == "binance_resampled"
        assert "2024-03-05 ETHUSDT: not resampled: validated schema check fails" in str(
            failure.event_specific_data
        )

        # checks: one evaluation per partition and check, the bad one failing with ERROR (blocking),
        # naming the failing rule, + the rows shown
        valid = evaluations(result, "binance/ohlcv_1m", "valid")
        assert set(valid) == {"2024-03-04|BTCUSDT", "2024-03-04|ETHUSDT", "2024-03-05|BTCUSDT", BAD}
        assert [p for p, e in valid.items() if not e.passed] == [BAD]
        assert valid[BAD].severity.value == "ERROR" and valid[BAD].blocking
        assert (
            valid[BAD].description.startswith("schema: FAILS: ")
            and "rows of this day failed validation" in valid[BAD].description
        )
        assert valid[BAD].metadata["rules"].value == {
            "schema": "fail (error)",
            "duplicates": "pass",
            "ohlc": "pass",
        }
        day_checks = [
            e for e in result.get_asset_check_evaluations() if e.check_name in ("valid", "complete")
        ]
        assert len(day_checks) == 4 * 2 * 2  # partitions x layers x (valid, complete)
        raw_valid = evaluations(result, "binance/ohlcv_1m_raw", "valid")[BAD]
        failures = raw_valid.metadata["ohlc_failures"].value  # a table with a schema
        assert not raw_valid.passed and raw_valid.severity.value == "WARN" and not raw_valid.blocking
        assert "high_ge_open_close" in {r.data["check"] for r in failures.records}

        # the other three partitions were resampled and recorded; the bad one was not
        served = materialized_partitions(instance, "binance/ohlcv_1h")
        assert served == {"2024-03-04|BTCUSDT", "2024-03-04|ETHUSDT", "2024-03-05|BTCUSDT"}
        assert BAD in materialized_partitions(instance, "binance/ohlcv_1m")

    hourly = read_served_candles(root, "1h", "binance", "ETHUSDT")
    assert set(hourly["timestamp"].dt.date) == {date(2024, 3, 4)}
    assert len(read_served_candles(root, "1d", "binance", "BTCUSDT")) == 2
    # the bad rows are kept, with their reason, and the 1m layer holds only valid rows
    quarantined = read_quarantine_candles(root, "binance", "ETHUSDT", date(2024, 3, 5))
    assert len(quarantined) >= 1 and quarantined["reason"].str.contains("high_ge_open_close").all()
    minutes = read_served_candles(root, "1m", "binance", "ETHUSDT")
    assert not minutes["timestamp"].isin(quarantined["timestamp"]).any()
    gaps = read_gaps(root, "binance", "ETHUSDT")
    assert gaps.loc[gaps["kind"] == "quarantined", "minutes"].sum() == len(quarantined)


def test_single_partition_run_blocks_downstream_natively(tmp_path: Path, make_simulator) -> None:
    sim = make_simulator(seed=5)
    sim.add_fault("binance:invalid:rows=1,symbol=ETH/USDT,day=2024-03-05")
    settings = sim_settings(tmp_path, sim)
    with instance_for_test() as instance:
        result = run(settings, CHAIN, BAD, BAD, instance)
        valid = evaluations(result, "binance/ohlcv_1m", "valid")
        assert list(valid) == [BAD] and not valid[BAD].passed
        assert not result.success
        started = {e.step_key for e in result.all_events if e.event_type == DagsterEventType.STEP_START}
        failed = {e.step_key for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE}
        assert failed == {"binance_validated_candle_checks"}  # the blocking check fails its step
        assert "binance_resampled" not in started  # Dagster's own blocking: resampling never ran
        assert not materialized_partitions(instance, "binance/ohlcv_1h")


def test_ranged_check_evaluations_target_each_partitions_materialisation(tmp_path: Path, simulator) -> None:
    settings = sim_settings(tmp_path, simulator)
    keys = ["bybit/ohlcv_1m_raw", "bybit/ohlcv_1m", "bybit/gaps"]
    with instance_for_test() as instance:
        assert run(settings, keys, "2024-03-04|BTCUSDT", "2024-03-05|BTCUSDT", instance).success
        check_key = AssetCheckKey(AssetKey(["bybit", "ohlcv_1m"]), "complete")
        infos = instance.event_log_storage.get_asset_check_partition_info([check_key])
        by_partition = {i.partition_key: i for i in infos}
        assert set(by_partition) == {"2024-03-04|BTCUSDT", "2024-03-05|BTCUSDT"}
        assert all(
            i.is_current for i in infos
        )  # each evaluation targets its partition's latest materialisation


def file_digests(root_dir: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root_dir.rglob("*.parquet"))
    }


def test_rerunning_a_range_gives_byte_identical_served_files(tmp_path: Path, make_simulator) -> None:
    sim = make_simulator(seed=9)
    settings = sim_settings(tmp_path, sim)
    keys = ["okx/ohlcv_1m_raw", "okx/ohlcv_1m", "okx/gaps"] + [f"okx/ohlcv_{tf}" for tf in ("5m", "1h", "1d")]
    keys = keys + ["okx/ohlcv_15m", "okx/ohlcv_4h"]
    served = Path(settings.storage_root)
    with instance_for_test() as instance:
        assert run(settings, keys, "2024-03-04|BTCUSDT", "2024-03-05|ETHUSDT", instance).success
        first = file_digests(served / "candles") | file_digests(served / "gaps")
        assert run(settings, keys, "2024-03-04|BTCUSDT", "2024-03-05|ETHUSDT", instance).success
        second = file_digests(served / "candles") | file_digests(served / "gaps")
    assert first == second
    assert sum(name.startswith("timeframe=") for name in first) == 2 * 6  # 2 symbols x 6 timeframes


def test_the_client_reads_every_venue_and_timeframe_after_a_pipeline_run(tmp_path: Path, simulator) -> None:
    settings = sim_settings(tmp_path, simulator)
    with instance_for_test() as instance:
        for venue in ("binance", "bybit", "okx"):
            keys = [f"{venue}/ohlcv_1m_raw", f"{venue}/ohlcv_1m", f"{venue}/gaps"] + [
                f"{venue}/ohlcv_{tf}" for tf in ("5m", "15m", "1h", "4h", "1d")
            ]
            assert run(settings, keys, "2024-03-05|BTCUSDT", "2024-03-05|BTCUSDT", instance).success
        dvol = ["deribit/dvol_raw", "deribit/dvol_1m", "deribit/dvol_1h"]
        assert run(settings, dvol, "BTC|2024-03-05", "BTC|2024-03-05", instance).success
        catalog = run(settings, ["serving/catalog"], None, None, instance)
        assert catalog.success
        meta = instance.fetch_materializations(AssetKey(["serving", "catalog"]), limit=1).records[0]
        assert meta.asset_materialization.metadata["series"].value == 3 * 6

    client = MarketDataClient(root=settings.storage_root)
    sizes = {"1m": 1440, "5m": 288, "15m": 96, "1h": 24, "4h": 6, "1d": 1}
    for venue in ("binance", "bybit", "okx"):
        for timeframe, bins in sizes.items():
            frame = client.get_historical_data(
                symbol="BTC/USDT",
                exchange=venue,
                timeframe=timeframe,
                start_date="2024-03-05",
                end_date="2024-03-06",
            )
            assert len(frame) >= bins * 0.99 and frame.index.is_monotonic_increasing, (venue, timeframe)
            assert {"open", "high", "low", "close", "volume"} <= set(frame.columns)
    available = client.available()
    assert len(available) == 18 and set(available["exchange"]) == {"binance", "bybit", "okx"}
    dvol_hourly = client.dvol(currency="BTC", timeframe="1h", start_date="2024-03-05", end_date="2024-03-06")
    assert len(dvol_hourly) == 24
    # 1d bars agree with the 1m they were made from
    minutes = client.get_historical_data("BTCUSDT", "bybit", "1m", "2024-03-05", "2024-03-06")
    daily = client.get_historical_data("BTCUSDT", "bybit", "1d", "2024-03-05", "2024-03-06").iloc[0]
    assert daily["high"] == minutes["high"].max() and daily["low"] == minutes["low"].min()
    assert daily["volume"] == pytest.approx(minutes["volume"].sum(), rel=1e-9)
    assert isinstance(minutes.index, pd.DatetimeIndex) and str(minutes.index.tz) == "UTC"


def test_a_revised_day_is_stored_logged_and_served_again(tmp_path: Path, make_simulator) -> None:
    from marketdata_assets.storage.revisions import read_revisions

    sim = make_simulator(seed=4)
    sim.add_fault("bybit:revised:factor=1.002")  # candles served once come back with a new close
    settings = sim_settings(tmp_path, sim)
    keys = ["bybit/ohlcv_1m_raw", "bybit/ohlcv_1m", "bybit/gaps"] + [
        f"bybit/ohlcv_{tf}" for tf in ("5m", "15m", "1h", "4h", "1d")
    ]
    root = StorageRoot.from_uri(settings.storage_root)
    partition = "2024-03-05|BTCUSDT"
    with instance_for_test() as instance:
        assert run(settings, keys, partition, partition, instance).success
        before = read_served_candles(root, "1d", "bybit", "BTCUSDT")
        assert run(settings, keys, partition, partition, instance).success
        records = instance.fetch_materializations(AssetKey(["bybit", "ohlcv_1m_raw"]), limit=2).records
        latest, first = (r.asset_materialization.metadata for r in records)
    assert first["revised_candles"].value == 0
    assert latest["revised_candles"].value == 1440 and latest["added_candles"].value == 0
    assert latest["max_rel_price_revision"].value == pytest.approx(0.002, rel=0.05)
    log = read_revisions(root, "bybit", "BTCUSDT")
    assert list(log["revised"]) == [1440] and log["day"].iloc[0] == date(2024, 3, 5)
    # downstream was recomputed from the new values in the same run
    after = read_served_candles(root, "1d", "bybit", "BTCUSDT")
    assert after["close"].iloc[0] == pytest.approx(before["close"].iloc[0] * 1.002, rel=1e-4)
