"""Raw ingestion end to end: Dagster materialises raw partitions against the simulator over real HTTP."""

from __future__ import annotations

import textwrap
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from dagster import AssetKey, AssetSelection, materialize
from dagster._core.test_utils import instance_for_test

from marketdata_assets.definitions import build_definitions
from marketdata_assets.settings import LoadedSettings, load_settings
from marketdata_assets.storage.raw import read_raw_candles, read_raw_dvol
from marketdata_assets.storage.root import StorageRoot

DAY = date(2024, 3, 5)


def sim_settings(tmp_path: Path, server, *, max_retries: int = 5) -> LoadedSettings:
    url = server.url
    venues = "".join(
        f"""
          {venue}:
            symbols: [BTC/USDT, ETH/USDT]
            start_date: 2024-03-01
            base_url: {url}/{venue}
            rate_limit_ms: 5
            timeout_ms: 3000
            max_retries: {max_retries}
        """
        for venue in ("binance", "bybit", "okx")
    )
    text = f"""
        environment: e2e
        synthetic: true
        storage:
          root: {tmp_path / "data"}
        venues:{venues}
        dvol:
          currencies: [BTC]
          start_date: 2024-03-01
          base_url: {url}/deribit
          rate_limit_ms: 5
          minute_history_days: 100000
    """
    path = tmp_path / "settings.yaml"
    path.write_text(textwrap.dedent(text))
    return load_settings(path, environ={})


def run(
    settings: LoadedSettings,
    keys: list[str],
    start: str | None,
    end: str | None,
    instance,
    *,
    checks: bool = True,
) -> object:
    """Materialise ``keys`` (user strings) for the partition range ``start``..``end`` (None for
    unpartitioned assets), with their checks unless ``checks=False``. ``start == end`` runs that one
    partition the way the UI's "materialise partition" does (a partition tag, not a range)."""
    defs = build_definitions(settings)
    selection = AssetSelection.assets(*[AssetKey.from_user_string(k) for k in keys])
    if not checks:
        selection = selection.without_checks()
    return materialize(
        [*defs.assets, *defs.asset_checks],
        selection=selection,
        resources=defs.resources,
        instance=instance,
        partition_key=start if start is not None and start == end else None,
        tags=(
            {"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end}
            if start is not None and start != end
            else {}
        ),
        raise_on_error=False,
    )


def partition_metadata(instance, key: str) -> dict[str, dict]:
    records = instance.fetch_materializations(AssetKey.from_user_string(key), limit=1000).records
    out = {}
    for record in records:
        mat = record.asset_materialization
        out.setdefault(mat.partition, {k: v.value for k, v in mat.metadata.items()})
    return out


def test_a_full_day_is_1440_closed_candles_per_venue(tmp_path: Path, simulator) -> None:
    settings = sim_settings(tmp_path, simulator)
    keys = ["binance/ohlcv_1m_raw", "bybit/ohlcv_1m_raw", "okx/ohlcv_1m_raw"]
    with instance_for_test() as instance:
        result = run(settings, keys, "2024-03-05|BTCUSDT", "2024-03-05|BTCUSDT", instance)
        assert result.success
        root = StorageRoot.from_uri(settings.storage_root)
        for key in keys:
            meta = partition_metadata(instance, key)["2024-03-05|BTCUSDT"]
            assert meta["rows"] == 1440 and meta["missing_minutes"] == 0, (key, meta)
            assert (
                meta["requests"] >= 2 and meta["bytes"] > 0 and meta["source_url"].startswith(simulator.url)
            )
            frame = read_raw_candles(root, key.split("/")[0], "BTCUSDT", DAY)
            assert len(frame) == 1440 and frame["timestamp"].is_monotonic_increasing
            assert frame["timestamp"].iloc[0] == datetime(2024, 3, 5, tzinfo=UTC)
    assert all(v["limit_breaches"] == 0 for v in simulator.stats()["venues"].values())


def test_outage_window_is_exactly_the_missing_minutes(tmp_path: Path, simulator) -> None:
    start = int(datetime(2024, 3, 5, 3, tzinfo=UTC).timestamp() * 1000)
    simulator.add_outage("bybit", start, start + 120 * 60_000)
    settings = sim_settings(tmp_path, simulator)
    with instance_for_test() as instance:
        assert run(
            settings, ["bybit/ohlcv_1m_raw"], "2024-03-05|BTCUSDT", "2024-03-05|BTCUSDT", instance
        ).success
        meta = partition_metadata(instance, "bybit/ohlcv_1m_raw")["2024-03-05|BTCUSDT"]
    assert meta["missing_minutes"] == 120
    assert meta["missing_ranges_utc"] == "03:00-05:00"
    assert meta["rows"] == 1320


def test_page_boundary_duplicates_are_kept_and_counted(tmp_path: Path, simulator) -> None:
    simulator.add_fault("binance:duplicates")
    settings = sim_settings(tmp_path, simulator)
    with instance_for_test() as instance:
        assert run(
            settings, ["binance/ohlcv_1m_raw"], "2024-03-05|BTCUSDT", "2024-03-05|BTCUSDT", instance
        ).success
        meta = partition_metadata(instance, "binance/ohlcv_1m_raw")["2024-03-05|BTCUSDT"]
    assert meta["duplicates"] >= 1
    assert meta["rows"] == 1440 + meta["duplicates"]
    assert meta["missing_minutes"] == 0


def test_a_ranged_run_records_every_partition(tmp_path: Path, simulator) -> None:
    settings = sim_settings(tmp_path, simulator)
    with instance_for_test() as instance:
        result = run(settings, ["deribit/dvol_raw"], "BTC|2024-03-04", "BTC|2024-03-05", instance)
        assert result.success
        meta = partition_metadata(instance, "deribit/dvol_raw")
    assert set(meta) == {"BTC|2024-03-04", "BTC|2024-03-05"}
    # each day shows its own numbers (not the range's totals), in a ranged run too
    assert meta["BTC|2024-03-05"]["rows"] == 1440 and meta["BTC|2024-03-04"]["rows"] == 1440
    assert meta["BTC|2024-03-05"]["first_timestamp"].startswith("2024-03-05T00:00")
    frame = read_raw_dvol(StorageRoot.from_uri(settings.storage_root), "BTC", DAY)
    assert len(frame) == 1440 and set(frame["resolution_s"]) == {60}


def test_rate_limited_venue_is_retried_and_never_banned(tmp_path: Path, make_simulator) -> None:
    server = make_simulator(limit_scale=0.005, window_scale=0.2)  # bybit: 3 requests per second
    settings = sim_settings(tmp_path, server)
    with instance_for_test() as instance:
        result = run(settings, ["bybit/ohlcv_1m_raw"], "2024-03-03|BTCUSDT", "2024-03-05|BTCUSDT", instance)
        assert result.success
        meta = partition_metadata(instance, "bybit/ohlcv_1m_raw")
    assert all(m["rows"] == 1440 for m in meta.values())  # each of the 3 days, its own numbers
    bybit = server.stats()["venues"]["bybit"]
    assert bybit["limit_breaches"] >= 1, bybit  # the limit was really hit ...
    assert bybit["bans_active"] == [] and 403 not in {
        int(s) for s in bybit["responses_by_status"]
    }  # ... never a ban


def test_a_failing_venue_fails_only_its_own_partitions(tmp_path: Path, simulator) -> None:
    simulator.add_fault("okx:http503")
    settings = sim_settings(tmp_path, simulator, max_retries=1)
    keys = ["binance/ohlcv_1m_raw", "okx/ohlcv_1m_raw"]
    with instance_for_test() as instance:
        result = run(settings, keys, "2024-03-05|BTCUSDT", "2024-03-05|BTCUSDT", instance)
        assert not result.success
        assert partition_metadata(instance, "binance/ohlcv_1m_raw")["2024-03-05|BTCUSDT"]["rows"] == 1440
        assert partition_metadata(instance, "okx/ohlcv_1m_raw") == {}
        failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.message + str(failure.step_failure_data.user_failure_data)
    assert "okx" in message and "BTC/USDT" in message and "2024-03-05" in message and "503" in message


@pytest.mark.parametrize("day", ["2099-01-01"])
def test_today_or_later_is_refused_with_a_clear_message(day: str) -> None:
    from marketdata_assets.pipeline.ingest import ensure_closed

    with pytest.raises(ValueError, match="not a closed UTC day yet"):
        ensure_closed(date.fromisoformat(day))
