"""The local exchange simulator: Binance, Bybit, OKX spot candles and Deribit DVOL on loopback.

A real HTTP server (Starlette on uvicorn) that stock ``ccxt`` clients talk to with only their base
URLs overridden (:func:`marketdata_assets.venues.endpoints.make_ccxt_exchange`), and ``httpx`` for
Deribit. One port, a path prefix per venue: ``http://127.0.0.1:PORT/binance/api/v3/klines``,
``/bybit/v5/market/kline``, ``/okx/api/v5/market/history-candles``,
``/deribit/api/v2/public/get_volatility_index_data``. A stock ccxt client with default options (only
``urls['api']`` pointed here) loads markets too: the futures/options lists it asks for (Binance
``/fapi``, ``/dapi``, ``/eapi`` ``exchangeInfo``; Bybit and OKX other categories) answer empty.

Replay (``--replay VENUE:SYMBOL=PATH``) serves recorded 1m candles: Binance archive zips/CSVs (ms or
us), freqtrade feather/parquet/json, QuantConnect LEAN minute trade-bar zips/CSVs, CSV with a header
(ISO or epoch s/ms/us/ns). The layout and time unit are recognised from the data, or the file is
refused with one error naming it and the reason: see :mod:`.replay`.

* market model and replay: :mod:`.market`, :mod:`.replay`
* wire formats: :mod:`.venues` (one module per venue)
* rate limits and bans: :mod:`.limits`
* faults and their spec format: :mod:`.faults`
* HTTP app and control API (``/__sim/...``): :mod:`.app`
* running it: :class:`SimulatorServer` (:mod:`.server`), the ``marketdata-sim`` CLI (:mod:`.cli`)
"""

from .config import Outage, ReplaySource, SimulatorConfig, SymbolSpec, default_symbols
from .core import Simulator
from .faults import Fault, parse_fault
from .server import SimulatorServer, is_loopback

__all__ = [
    "Fault",
    "Outage",
    "ReplaySource",
    "Simulator",
    "SimulatorConfig",
    "SimulatorServer",
    "SymbolSpec",
    "default_symbols",
    "is_loopback",
    "parse_fault",
]
