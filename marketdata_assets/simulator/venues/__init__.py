"""One module per simulated venue: its paths, parameters, wire format and error answers."""

from __future__ import annotations

from ..wire import VenueApi
from .binance import BinanceApi
from .bybit import BybitApi
from .deribit import DeribitApi
from .okx import OkxApi


def venue_apis() -> dict[str, VenueApi]:
    """Fresh API objects for every venue, keyed by the URL prefix they are served under."""
    return {"binance": BinanceApi(), "bybit": BybitApi(), "okx": OkxApi(), "deribit": DeribitApi()}
