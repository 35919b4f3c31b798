"""``marketdata_assets.venues.endpoints``: base URLs and pointing stock ccxt clients at them."""

from __future__ import annotations

import subprocess
import sys
from types import ModuleType

import pytest

from marketdata_assets.venues.endpoints import (
    REAL_BASE_URLS,
    ccxt_api_urls,
    make_ccxt_exchange,
    point_ccxt_at,
)

BASE = "http://127.0.0.1:1234"


def _urls(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [u for v in value.values() for u in _urls(v)]
    return []


def test_real_base_urls() -> None:
    assert REAL_BASE_URLS == {
        "binance": "https://api.binance.com",
        "bybit": "https://api.bybit.com",
        "okx": "https://www.okx.com",
        "deribit": "https://www.deribit.com",
    }


@pytest.mark.parametrize("venue", ["binance", "bybit", "okx", "deribit"])
def test_mapping_covers_every_key_of_the_installed_ccxt(venue: str, ccxt_lib: ModuleType) -> None:
    stock = getattr(ccxt_lib, venue)().urls["api"]
    mapping = ccxt_api_urls(venue, f"{BASE}/{venue}")
    assert set(stock) == set(mapping), "a ccxt upgrade added or removed urls['api'] keys"
    assert all(url.startswith(f"{BASE}/{venue}") for url in mapping.values())


def test_binance_paths_keep_the_real_path_under_the_prefix(ccxt_lib: ModuleType) -> None:
    stock = ccxt_lib.binance().urls["api"]
    mapping = ccxt_api_urls("binance", f"{BASE}/binance")
    assert mapping["public"] == f"{BASE}/binance/api/v3"
    for key, url in stock.items():
        real_path = "/" + url.split("/", 3)[3]
        assert mapping[key] == f"{BASE}/binance{real_path}", key


def test_trailing_slash_and_bad_urls() -> None:
    assert ccxt_api_urls("okx", f"{BASE}/okx/") == {"rest": f"{BASE}/okx"}
    with pytest.raises(ValueError, match="base URL"):
        ccxt_api_urls("okx", "127.0.0.1:1234/okx")
    with pytest.raises(ValueError, match="unknown venue"):
        ccxt_api_urls("kraken", BASE)
    with pytest.raises(ValueError, match="no ccxt client"):
        make_ccxt_exchange("deribit", BASE)


@pytest.mark.parametrize("venue", ["binance", "bybit", "okx"])
def test_make_ccxt_exchange_is_spot_only_and_fully_redirected(venue: str, ccxt_lib: ModuleType) -> None:
    exchange = make_ccxt_exchange(venue, f"{BASE}/{venue}", timeout_ms=1234, rate_limit_ms=7)
    assert isinstance(exchange, ccxt_lib.Exchange)
    assert exchange.options["fetchMarkets"]["types"] == ["spot"]
    assert exchange.options["defaultType"] == "spot"
    assert exchange.has["fetchCurrencies"] is False
    assert exchange.timeout == 1234 and exchange.rateLimit == 7 and exchange.enableRateLimit is True
    leaks = [u for u in _urls(exchange.urls["api"]) if not u.startswith(f"{BASE}/{venue}")]
    assert leaks == []
    # the class-level description is untouched: a second, real client still points at the venue
    real = make_ccxt_exchange(venue)
    assert all(u.startswith("https://") for u in _urls(real.urls["api"]))
    assert real.has["fetchCurrencies"] is False


def test_point_ccxt_at_rehosts_keys_it_does_not_know(ccxt_lib: ModuleType) -> None:
    exchange = ccxt_lib.binance()
    exchange.urls["api"]["futureThing"] = "https://fapi.binance.com/fapi/v9"
    point_ccxt_at(exchange, "binance", f"{BASE}/binance")
    assert exchange.urls["api"]["futureThing"] == f"{BASE}/binance/fapi/v9"


def test_importing_endpoints_does_not_import_ccxt() -> None:
    code = "import sys, marketdata_assets.venues.endpoints; print('ccxt' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
