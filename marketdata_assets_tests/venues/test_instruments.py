"""Instrument reference data: markets through ccxt from the simulator, status mapping, malformed
markets, universe validation, and the tick-grid round trip (real recorded candles + the simulator's)."""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest

from marketdata_assets.frames import CANDLE_COLUMNS
from marketdata_assets.simulator import SimulatorServer
from marketdata_assets.venues.base import MalformedResponseError, VenueError
from marketdata_assets.venues.ccxt_venue import CcxtCandleSource
from marketdata_assets.venues.instruments import (
    INSTRUMENT_COLUMNS,
    UniverseError,
    fetch_instruments,
    instruments_from_markets,
    load_instruments,
    map_status,
    off_tick_prices,
    validate_universe,
)
from marketdata_assets_tests.transform.real_fixtures import binance_archive_day, freqtrade_feather
from marketdata_assets_tests.venues.helpers import DAY, FAST_RETRY, CorruptingProxy, venue_stats

MakeSim = Callable[..., SimulatorServer]
VENUES = ("binance", "bybit", "okx")
FETCHED = datetime(2024, 3, 10, 12, 0, tzinfo=UTC).timestamp()


def _load(sim: SimulatorServer | str, venue: str, **kw: Any) -> pd.DataFrame:
    base = sim.venue_base_url(venue) if isinstance(sim, SimulatorServer) else f"{sim}/{venue}"
    return fetch_instruments(venue, base, rate_limit_ms=5, retry=FAST_RETRY, clock=lambda: FETCHED, **kw)


def _row(frame: pd.DataFrame, symbol: str) -> pd.Series:
    rows = frame[frame["symbol"] == symbol]
    assert len(rows) == 1, (symbol, frame["symbol"].tolist())
    return rows.iloc[0]


# -- fetched from the simulator -------------------------------------------------------------------


@pytest.mark.parametrize("venue", VENUES)
def test_one_request_gives_the_canonical_frame(venue: str, make_simulator: MakeSim) -> None:
    sim = make_simulator(seed=2)
    loaded = load_instruments(venue, sim.venue_base_url(venue), rate_limit_ms=5, clock=lambda: FETCHED)
    frame = loaded.frame
    assert list(frame.columns) == INSTRUMENT_COLUMNS
    assert frame["symbol"].tolist() == sorted(["BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT", "DOGE/USDT"])
    assert (frame["exchange"] == venue).all() and (frame["status"] == "trading").all()
    assert frame["symbol_key"].tolist() == [s.replace("/", "") for s in frame["symbol"]]
    assert (
        str(frame["tick_size"].dtype) == "float64" and str(frame["listed_at"].dtype) == "datetime64[ms, UTC]"
    )
    assert (frame["fetched_at"] == pd.Timestamp(FETCHED, unit="s", tz="UTC")).all()
    assert (frame["tick_size"] > 0).all() and (frame["amount_step"] > 0).all()
    stats = venue_stats(sim, venue)
    assert stats["requests"] == 1 and loaded.stats.requests == 1, stats["requests_by_endpoint"]


def test_values_are_the_venues_own(make_simulator: MakeSim) -> None:
    sim = make_simulator(seed=2)
    binance, bybit, okx = (_load(sim, v) for v in VENUES)
    btc = _row(binance, "BTC/USDT")
    assert (btc.venue_id, btc.base, btc.quote, btc.raw_status) == ("BTCUSDT", "BTC", "USDT", "TRADING")
    assert (btc.tick_size, btc.amount_step, btc.min_amount, btc.min_notional) == (0.01, 0.00001, 0.00001, 5.0)
    assert pd.isna(btc.listed_at)  # Binance spot exposes no listing date
    xrp = _row(bybit, "XRP/USDT")
    assert (xrp.tick_size, xrp.amount_step, xrp.min_amount, xrp.raw_status) == (0.0001, 0.01, 0.98, "Trading")
    assert pd.isna(xrp.listed_at)  # Bybit spot instruments carry no launchTime
    okx_btc = _row(okx, "BTC/USDT")
    assert (okx_btc.venue_id, okx_btc.tick_size, okx_btc.amount_step, okx_btc.min_amount) == (
        "BTC-USDT",
        0.1,
        1e-8,
        1e-5,
    )
    assert np.isnan(okx_btc.min_notional)  # OKX publishes no minimum order value
    assert okx_btc.listed_at == pd.Timestamp("2017-08-17", tz="UTC") and okx_btc.raw_status == "live"


def test_halted_and_delisted_in_each_venues_words(make_simulator: MakeSim) -> None:
    sim = make_simulator(
        seed=2,
        instrument_status={
            "SOL/USDT": "halted",
            "binance:XRP/USDT": "delisted",
            "bybit:XRP/USDT": "delisted",
            "bybit:DOGE/USDT": "Delivering",  # a raw venue status is served as given
            "okx:XRP/USDT": "delisted",
        },
    )
    binance, bybit, okx = (_load(sim, v) for v in VENUES)
    assert tuple(_row(binance, "SOL/USDT")[["status", "raw_status"]]) == ("halted", "HALT")
    assert tuple(_row(binance, "XRP/USDT")[["status", "raw_status"]]) == ("delisted", "BREAK")
    assert tuple(_row(bybit, "SOL/USDT")[["status", "raw_status"]]) == ("halted", "PreLaunch")
    assert tuple(_row(bybit, "XRP/USDT")[["status", "raw_status"]]) == ("delisted", "Closed")
    assert tuple(_row(bybit, "DOGE/USDT")[["status", "raw_status"]]) == ("halted", "Delivering")
    assert tuple(_row(okx, "SOL/USDT")[["status", "raw_status"]]) == ("halted", "suspend")
    assert "XRP/USDT" not in okx["symbol"].tolist()  # OKX drops a delisted pair from its list
    assert (binance.loc[~binance["symbol"].isin(["SOL/USDT", "XRP/USDT"]), "status"] == "trading").all()


def test_a_status_change_shows_at_the_next_refresh(make_simulator: MakeSim) -> None:
    sim = make_simulator(seed=2)
    assert _row(_load(sim, "binance"), "ETH/USDT").status == "trading"
    sim.simulator.config.set_instrument_status("binance:ETH/USDT", "delisted")
    with pytest.raises(UniverseError, match="'ETH/USDT' is delisted"):
        validate_universe(["BTC/USDT", "ETH/USDT"], _load(sim, "binance"), "binance")
    sim.simulator.config.set_instrument_status("binance:ETH/USDT", None)
    assert _row(_load(sim, "binance"), "ETH/USDT").status == "trading"


def test_status_mapping_never_guesses_trading() -> None:
    assert map_status("binance", "TRADING") == "trading"
    assert map_status("binance", "BREAK") == "delisted"
    assert map_status("bybit", "Closed") == "delisted"
    assert map_status("okx", "preopen") == "halted"
    assert map_status("okx", "some_new_state") == "halted"  # unknown words never pass as trading


# -- malformed markets ---------------------------------------------------------------------------


def _binance_market(**info_changes: Any) -> dict[str, Any]:
    info = {
        "symbol": "BTCUSDT",
        "status": "TRADING",
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": "0.01",
                "maxPrice": "1000000",
                "tickSize": "0.01000000",
            },
            {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "9000", "stepSize": "0.00001000"},
            {"filterType": "MIN_NOTIONAL", "minNotional": "10.00000000", "applyToMarket": True},
        ],
    }
    info.update(info_changes)
    return {
        "BTC/USDT": {
            "symbol": "BTC/USDT",
            "base": "BTC",
            "quote": "USDT",
            "spot": True,
            "type": "spot",
            "info": info,
        }
    }


def test_older_min_notional_filter_is_read() -> None:
    frame = instruments_from_markets("binance", _binance_market())
    assert _row(frame, "BTC/USDT").min_notional == 10.0


@pytest.mark.parametrize(
    ("change", "what"),
    [
        (lambda i: i["filters"][0].pop("tickSize"), "field 'PRICE_FILTER.tickSize' missing"),
        (lambda i: i["filters"].pop(1), "field 'LOT_SIZE.stepSize' missing"),
        (lambda i: i["filters"][0].update(tickSize="abc"), "field 'PRICE_FILTER.tickSize' is not a number"),
        (
            lambda i: i["filters"][0].update(tickSize="0.00000000"),
            "field 'PRICE_FILTER.tickSize' must be > 0",
        ),
        (lambda i: i.pop("status"), "field 'status' missing or empty"),
        (lambda i: i.pop("filters"), "field 'PRICE_FILTER.tickSize' missing"),
    ],
)
def test_a_market_missing_a_field_names_venue_symbol_and_field(
    change: Callable[[dict], Any], what: str
) -> None:
    markets = _binance_market()
    change(markets["BTC/USDT"]["info"])
    with pytest.raises(MalformedResponseError) as info:
        instruments_from_markets("binance", markets)
    assert (info.value.venue, info.value.symbol) == ("binance", "BTC/USDT")
    assert str(info.value).startswith(f"binance BTC/USDT: malformed response: {what}")


def test_no_spot_market_at_all_is_malformed() -> None:
    with pytest.raises(
        MalformedResponseError, match="okx: malformed response: market list holds no spot market"
    ):
        instruments_from_markets("okx", {})


def test_deribit_has_no_instruments() -> None:
    with pytest.raises(ValueError, match="Deribit DVOL is an index"):
        fetch_instruments("deribit", "http://127.0.0.1:9/deribit")


def _drop_tick_size(path: str, status: int, body: bytes) -> bytes | None:
    if "/public/instruments" not in path:
        return None
    payload = json.loads(body)
    payload["data"][1]["tickSz"] = ""
    return json.dumps(payload).encode()


def _html(path: str, status: int, body: bytes) -> bytes | None:
    return b"<html><body>Welcome!</body></html>" if "exchangeInfo" in path else None


def test_malformed_answer_over_http_names_the_field(make_simulator: MakeSim) -> None:
    sim = make_simulator(seed=2)
    with CorruptingProxy(sim.url, _drop_tick_size) as proxy, pytest.raises(MalformedResponseError) as info:
        _load(proxy.url, "okx")
    assert str(info.value) == "okx ETH/USDT: malformed response: field 'tickSz' missing"


def test_non_json_market_list_is_malformed_not_an_empty_venue(make_simulator: MakeSim) -> None:
    # ccxt turns a 200 HTML page into an empty market list without raising; an empty list must not
    # pass for "the venue lists nothing" (every configured symbol would then look unknown).
    sim = make_simulator(seed=2)
    with CorruptingProxy(sim.url, _html) as proxy, pytest.raises(MalformedResponseError) as info:
        _load(proxy.url, "binance")
    assert str(info.value) == (
        "binance: malformed response: market list holds no spot market (an empty or unparseable answer)"
    )
    assert proxy.rewritten == 1


def test_transient_failure_is_retried(make_simulator: MakeSim) -> None:
    sim = make_simulator(seed=2)
    sim.add_fault("bybit:http500:endpoint=instruments-info,count=2")
    loaded = load_instruments("bybit", sim.venue_base_url("bybit"), rate_limit_ms=5, retry=FAST_RETRY)
    assert len(loaded.frame) == 5 and loaded.stats.requests == 3 and loaded.stats.retries == 2


def test_unreachable_venue_is_a_venue_error(make_simulator: MakeSim) -> None:
    sim = make_simulator(seed=2)
    sim.add_fault("okx:maintenance:endpoint=instruments")
    with pytest.raises(VenueError, match=r"^okx: could not load markets"):
        _load(sim, "okx", max_retries=1)


# -- the configured universe -----------------------------------------------------------------------


def _frame(statuses: dict[str, tuple[str, str]]) -> pd.DataFrame:
    markets = {}
    for symbol, (_, raw) in statuses.items():
        base, quote = symbol.split("/")
        market = copy.deepcopy(_binance_market(symbol=base + quote, status=raw)["BTC/USDT"])
        market.update(symbol=symbol, base=base, quote=quote)
        markets[symbol] = market
    return instruments_from_markets("binance", markets)


LISTED = {
    "BTC/USDT": ("trading", "TRADING"),
    "ETH/USDT": ("trading", "TRADING"),
    "SOL/USDT": ("halted", "HALT"),
    "LUNA/USDT": ("delisted", "BREAK"),
}


def test_a_valid_universe_passes_and_halted_is_a_warning() -> None:
    report = validate_universe(["BTC/USDT", "SOL/USDT"], _frame(LISTED), "binance")
    assert report.halted == {"SOL/USDT": "HALT"}
    assert report.warnings == [
        "binance SOL/USDT is halted (venue status 'HALT'); its candles may stop until trading resumes"
    ]
    assert validate_universe(["ETH/USDT"], _frame(LISTED), "binance").warnings == []


def test_unknown_and_delisted_symbols_are_one_clear_error() -> None:
    with pytest.raises(UniverseError) as info:
        validate_universe(
            ["BTC/USDT", "ETH/USDC", "LUNA/USDT", "SOL/USDT", "btcusdt"], _frame(LISTED), "binance"
        )
    error = info.value
    assert error.unknown == {"ETH/USDC": ["ETH/USDT"], "btcusdt": ["BTC/USDT"]}
    assert error.delisted == {"LUNA/USDT": "BREAK"} and error.halted == {"SOL/USDT": "HALT"}
    text = str(error)
    assert text.startswith(
        "binance: configured universe invalid: 'ETH/USDC' is not listed (did you mean ETH/USDT?)"
    )
    assert "'LUNA/USDT' is delisted (venue status 'BREAK')" in text
    assert "also halted (not an error): SOL/USDT (HALT)" in text
    assert text.endswith("Fix venues.binance.symbols in the settings.")
    copied = pickle.loads(pickle.dumps(error))  # crosses Dagster's process boundaries intact
    assert (str(copied), copied.unknown, copied.delisted) == (text, error.unknown, error.delisted)


def test_delisted_symbols_are_not_offered_as_close_matches() -> None:
    with pytest.raises(UniverseError) as info:
        validate_universe(["LUNA/USDC"], _frame(LISTED), "binance")
    assert info.value.unknown == {"LUNA/USDC": []}


# -- the tick grid ---------------------------------------------------------------------------------


def test_real_binance_archive_prices_sit_on_the_tick_grid() -> None:
    # ADA/BTC on Binance ticks 0.00000001 (archive prices carry eight decimals).
    for name in ("binance_spot_ADABTC_1m_2021-11-27.csv", "binance_spot_ADABTC_1m_2021-11-28.csv"):
        candles = binance_archive_day(name)
        assert len(candles) == 1440
        assert off_tick_prices(candles, 1e-8).empty
        # a ten times coarser grid is not the venue's: most real prices fall off it
        assert len(off_tick_prices(candles, 1e-7)) > 1000


def test_real_freqtrade_candles_on_the_grid_and_a_constructed_off_grid_row() -> None:
    candles = freqtrade_feather("XRP_ETH_1m.feather")
    assert off_tick_prices(candles, 1e-8).empty
    broken = candles.copy()
    broken.loc[10, "high"] += 0.5e-8  # half a tick
    broken.loc[20, "close"] += 1e-10  # a hundredth of a tick
    off = off_tick_prices(broken, 1e-8)
    assert off.index.tolist() == [10, 20]
    assert off["off_tick_columns"].tolist() == ["high", "close"]
    assert list(off.columns) == [*CANDLE_COLUMNS, "off_tick_columns"]


def test_float_parsing_noise_is_not_off_grid_and_nan_is_not_judged() -> None:
    candles = pd.DataFrame(
        {
            "open": [42000.12, 0.1 + 0.2, 123456.78],
            "high": [float("42000.13"), 0.3, np.nan],
            "low": [41999.99, 0.3, 123456.7],
            "close": [42000.1 + 0.02, 0.3, 123456.71],
        }
    )
    assert off_tick_prices(candles, 0.01).empty
    assert off_tick_prices(candles.iloc[[0]], 1e-8).empty  # 4.2e12 ticks: float noise is not off-grid
    with pytest.raises(ValueError, match="tick_size must be a positive number"):
        off_tick_prices(candles, 0)
    with pytest.raises(ValueError, match="lacks price columns"):
        off_tick_prices(candles.drop(columns=["close"]), 0.01)


@pytest.mark.parametrize(
    ("venue", "symbol"),
    # OKX pages 100 rows under a 20 requests / 2 s limit: one symbol there keeps the test quick
    [("binance", "BTC/USDT"), ("binance", "DOGE/USDT"), ("bybit", "DOGE/USDT"), ("okx", "BTC/USDT")],
)
def test_simulator_candles_round_trip_on_the_served_tick_grid(
    venue: str, symbol: str, shared_simulator: SimulatorServer
) -> None:
    tick = float(_row(_load(shared_simulator, venue), symbol).tick_size)
    source = CcxtCandleSource(
        venue, shared_simulator.venue_base_url(venue), rate_limit_ms=5, retry=FAST_RETRY
    )
    try:
        frame = source.fetch_day(symbol, DAY).frame
    finally:
        source.close()
    assert len(frame) > 1000
    assert off_tick_prices(frame, tick).empty
    # and the grid is no coarser than the tick: ten ticks would leave most prices off it
    assert len(off_tick_prices(frame, tick * 10)) > len(frame) // 2
