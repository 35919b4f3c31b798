"""Where each venue lives, and how to point a stock ccxt client somewhere else.

A venue's *base URL* is the root its native REST paths are appended to: ``https://api.binance.com``
for Binance (``/api/v3/klines``), ``https://api.bybit.com`` for Bybit (``/v5/market/kline``),
``https://www.okx.com`` for OKX (``/api/v5/market/candles``), ``https://www.deribit.com`` for Deribit
(``/api/v2/public/get_volatility_index_data``). The local simulator serves every venue on one port
under a path prefix, so its base URLs are ``http://127.0.0.1:PORT/binance`` and so on.

:func:`ccxt_api_urls` gives the ``exchange.urls['api']`` entries that send *every* REST call of a
stock ccxt client (spot, futures, options, private: all of them, so nothing can leak to a real host)
to a base URL; :func:`make_ccxt_exchange` builds a synchronous, spot-only client with them.

ccxt is imported inside the functions only: importing it costs about four seconds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from marketdata_assets.universe import CANDLE_VENUES

if TYPE_CHECKING:  # pragma: no cover - typing only
    import ccxt

REAL_BASE_URLS: dict[str, str] = {
    "binance": "https://api.binance.com",
    "bybit": "https://api.bybit.com",
    "okx": "https://www.okx.com",
    "deribit": "https://www.deribit.com",
}

CCXT_VENUES = CANDLE_VENUES

# Binance: ccxt ``urls['api']`` key -> path under the venue root (ccxt 4.5: every key it defines).
# The futures/options/portfolio hosts (fapi., dapi., eapi., papi.) are folded onto the same root, so
# nothing leaks to a real host; the simulator answers only their exchangeInfo/ping/time (empty: no
# contracts, what a stock ccxt client's load_markets asks), any other call fails loudly on loopback.
_BINANCE_API_PATHS: dict[str, str] = {
    "public": "/api/v3",
    "private": "/api/v3",
    "v1": "/api/v1",
    "sapi": "/sapi/v1",
    "sapiV2": "/sapi/v2",
    "sapiV3": "/sapi/v3",
    "sapiV4": "/sapi/v4",
    "dapiPublic": "/dapi/v1",
    "dapiPrivate": "/dapi/v1",
    "dapiPrivateV2": "/dapi/v2",
    "dapiData": "/futures/data",
    "eapiPublic": "/eapi/v1",
    "eapiPrivate": "/eapi/v1",
    "fapiPublic": "/fapi/v1",
    "fapiPublicV2": "/fapi/v2",
    "fapiPublicV3": "/fapi/v3",
    "fapiPrivate": "/fapi/v1",
    "fapiPrivateV2": "/fapi/v2",
    "fapiPrivateV3": "/fapi/v3",
    "fapiData": "/futures/data",
    "papi": "/papi/v1",
    "papiV2": "/papi/v2",
}
# Bybit and OKX append the whole native path (``v5/market/kline``, ``/api/v5/...``) to the root.
_ROOT_KEYS: dict[str, tuple[str, ...]] = {
    "bybit": ("spot", "futures", "v2", "public", "private"),
    "okx": ("rest",),
    "deribit": ("rest",),
}

# Spot-only market loading: exactly one public request per load_markets(), no currencies call,
# no server-time call, no margin/option/futures listings.
SPOT_ONLY_OPTIONS: dict[str, dict[str, Any]] = {
    "binance": {
        "defaultType": "spot",
        "fetchMarkets": {"types": ["spot"]},
        "fetchCurrencies": False,
        "fetchMargins": False,
        "loadAllOptions": False,
        "adjustForTimeDifference": False,
    },
    "bybit": {
        "defaultType": "spot",
        "fetchMarkets": {"types": ["spot"]},
        "loadAllOptions": False,
        "loadExpiredOptions": False,
        "usePrivateInstrumentsInfo": False,
        "adjustForTimeDifference": False,
    },
    "okx": {
        "defaultType": "spot",
        "fetchMarkets": {"types": ["spot"]},
        "adjustForTimeDifference": False,
    },
}


def _root(base_url: str) -> str:
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"base URL must be http(s)://host[:port][/prefix], got {base_url!r}")
    return base_url.rstrip("/")


def ccxt_api_urls(venue: str, base_url: str) -> dict[str, str]:
    """``exchange.urls['api']`` entries that route every REST call of a stock ccxt client to ``base_url``.

    >>> ccxt_api_urls("binance", "http://127.0.0.1:8900/binance")["public"]
    'http://127.0.0.1:8900/binance/api/v3'
    >>> ccxt_api_urls("okx", "http://127.0.0.1:8900/okx")
    {'rest': 'http://127.0.0.1:8900/okx'}
    """
    root = _root(base_url)
    if venue == "binance":
        return {key: root + path for key, path in _BINANCE_API_PATHS.items()}
    if venue in _ROOT_KEYS:
        return dict.fromkeys(_ROOT_KEYS[venue], root)
    raise ValueError(f"unknown venue {venue!r}; expected one of {', '.join(REAL_BASE_URLS)}")


def _rehost(url: str, root: str) -> str:
    """``https://fapi.binance.com/fapi/v1`` -> ``{root}/fapi/v1`` (for keys a newer ccxt may add)."""
    path = urlsplit(url.replace("{hostname}", "host")).path
    return root + path.rstrip("/")


def point_ccxt_at(exchange: Any, venue: str, base_url: str) -> None:
    """Rewrite ``exchange.urls['api']`` in place so no REST call leaves ``base_url``.

    Keys :func:`ccxt_api_urls` does not know (a newer ccxt) keep their path on the new root.
    """
    root = _root(base_url)
    api = exchange.urls["api"]
    mapping = ccxt_api_urls(venue, base_url)
    for key, value in list(api.items()):
        if key in mapping:
            continue
        if isinstance(value, str):
            mapping[key] = _rehost(value, root)
        elif isinstance(value, dict):
            mapping[key] = {k: _rehost(v, root) for k, v in value.items() if isinstance(v, str)}
    api.update(mapping)


def make_ccxt_exchange(
    venue: str,
    base_url: str | None = None,
    *,
    timeout_ms: int = 10000,
    enable_rate_limit: bool = True,
    rate_limit_ms: float | None = None,
) -> ccxt.Exchange:
    """A synchronous spot-only ccxt client for ``venue`` (binance, bybit, okx).

    ``load_markets()`` makes exactly one public request (Binance ``GET /api/v3/exchangeInfo``,
    Bybit ``GET /v5/market/instruments-info?category=spot``, OKX
    ``GET /api/v5/public/instruments?instType=SPOT``). With ``base_url`` every REST URL of the client
    points there (see :func:`ccxt_api_urls`); without it the client talks to the real venue.
    ``rate_limit_ms`` overrides ccxt's per-instance request spacing (``exchange.rateLimit``).
    """
    if venue not in CCXT_VENUES:
        raise ValueError(f"no ccxt client for {venue!r}; expected one of {', '.join(CCXT_VENUES)}")
    import ccxt

    config: dict[str, Any] = {
        "enableRateLimit": enable_rate_limit,
        "timeout": int(timeout_ms),
        "options": {
            key: (dict(v) if isinstance(v, dict) else v) for key, v in SPOT_ONLY_OPTIONS[venue].items()
        },
        # With credentials ccxt would call private currency endpoints inside load_markets().
        "has": {"fetchCurrencies": False},
    }
    if rate_limit_ms is not None:
        config["rateLimit"] = float(rate_limit_ms)
    exchange = getattr(ccxt, venue)(config)
    if base_url is not None:
        point_ccxt_at(exchange, venue, base_url)
    return exchange
