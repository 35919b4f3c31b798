"""Reference assets through Dagster against the simulator: store the instruments, check the universe."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, materialize

from marketdata_assets.client import MarketDataClient
from marketdata_assets.defs.reference import build_reference_assets, instruments_key
from marketdata_assets.defs.resources import resources_from_settings
from marketdata_assets.settings import LoadedSettings, load_settings
from marketdata_assets.venues.instruments import UniverseError, check_settings_universe

VENUES = ("binance", "bybit", "okx")


def sim_settings(tmp_path: Path, server, symbols: dict[str, list[str]] | None = None) -> LoadedSettings:
    venues = "".join(
        f"""
          {venue}:
            symbols: [{", ".join((symbols or {}).get(venue, ["BTC/USDT", "ETH/USDT"]))}]
            start_date: 2024-03-01
            base_url: {server.url}/{venue}
            rate_limit_ms: 5
            timeout_ms: 3000
            max_retries: 1
        """
        for venue in VENUES
    )
    text = f"""
        environment: e2e
        synthetic: true
        storage:
          root: {tmp_path / "data"}
        venues:{venues}
    """
    path = tmp_path / "settings.yaml"
    path.write_text(textwrap.dedent(text))
    return load_settings(path, environ={})


def rows(table) -> list[list]:  # noqa: ANN001 - TableMetadataValue
    names = [column.name for column in table.schema.columns]
    return [[record.data[name] for name in names] for record in table.records]


def metadata(instance: DagsterInstance, venue: str) -> dict:
    records = instance.fetch_materializations(instruments_key(venue), limit=1).records
    assert records, f"{venue}/instruments was not materialised"
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def failure_text(result, venue: str) -> str:
    failures = [e for e in result.all_events if e.is_step_failure and e.step_key == f"{venue}__instruments"]
    assert len(failures) == 1, [e.step_key for e in result.all_events if e.is_step_failure]
    return failures[0].step_failure_data.error.message


def test_every_venue_stores_its_instruments_and_reports_the_universe(tmp_path: Path, simulator) -> None:
    settings = sim_settings(tmp_path, simulator)
    assets = build_reference_assets(settings)
    assert [a.key for a in assets] == [AssetKey([v, "instruments"]) for v in VENUES]
    assert {a.group_names_by_key[a.key] for a in assets} == {"reference"}
    assert [a.op.pool for a in assets] == [f"venue_{v}" for v in VENUES]
    with DagsterInstance.ephemeral() as instance:
        result = materialize(assets, instance=instance, resources=resources_from_settings(settings))
        assert result.success
        okx = metadata(instance, "okx")
    assert okx["instruments"] == 5 and okx["instruments_trading"] == 5 and okx["instruments_delisted"] == 0
    assert okx["requests"] == 1 and okx["halted_symbols"] == "none"
    table = rows(okx["configured_symbols"])  # table metadata with a schema
    assert ["BTC/USDT", "BTC-USDT", "0.1", "1e-08", "1e-05", "-", "trading (live)"] in table
    assert ["ETH/USDT", "ETH-USDT", "0.01"] in [row[:3] for row in table]
    stored = MarketDataClient(root=settings.storage_root).instruments()
    assert stored.groupby("exchange").size().to_dict() == {"binance": 5, "bybit": 5, "okx": 5}
    assert all(v["limit_breaches"] == 0 for v in simulator.stats()["venues"].values())


def test_unknown_or_delisted_symbol_fails_that_venue_with_a_clear_message(
    tmp_path: Path, make_simulator
) -> None:
    sim = make_simulator(
        seed=1, instrument_status={"binance:ETH/USDT": "delisted", "bybit:ETH/USDT": "halted"}
    )
    settings = sim_settings(tmp_path, sim, {"okx": ["BTC/USDT", "ETH/USDC"]})
    with DagsterInstance.ephemeral() as instance:
        result = materialize(
            build_reference_assets(settings),
            instance=instance,
            resources=resources_from_settings(settings),
            raise_on_error=False,
        )
        assert not result.success
        binance = failure_text(result, "binance")
        okx = failure_text(result, "okx")
        bybit = metadata(instance, "bybit")  # halted is a warning: the asset materialised
    assert "binance: configured universe invalid: 'ETH/USDT' is delisted (venue status 'BREAK')" in binance
    assert "'ETH/USDC' is not listed (did you mean ETH/USDT?)" in okx and "venues.okx.symbols" in okx
    assert bybit["halted_symbols"] == "ETH/USDT" and bybit["instruments_halted"] == 1
    assert ["ETH/USDT", "ETHUSDT", "0.01", "1e-05", "0.00062", "5", "halted (PreLaunch)"] in rows(
        bybit["configured_symbols"]
    )
    # the failing venues still stored what they list, for a person to look at
    client = MarketDataClient(root=settings.storage_root)
    eth = client.instruments("binance").set_index("symbol").loc["ETH/USDT"]
    assert (eth["status"], eth["raw_status"]) == ("delisted", "BREAK")


def test_settings_check_a_cli_can_call(tmp_path: Path, make_simulator) -> None:
    sim = make_simulator(seed=1, limits_enabled=False, instrument_status={"okx:ETH/USDT": "delisted"})
    settings = sim_settings(tmp_path, sim)
    with pytest.raises(UniverseError, match=r"^okx: configured universe invalid: 'ETH/USDT' is not listed"):
        check_settings_universe(settings)
    reports = check_settings_universe(settings, venues=["binance", "bybit"])
    assert sorted(reports) == ["binance", "bybit"] and all(not r.halted for r in reports.values())
