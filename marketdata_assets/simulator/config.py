"""What the simulator serves: venues, listed symbols, replay files, limits, faults, the clock."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

# The venues, DVOL currencies and DVOL's first day are the platform's (one home: universe.py).
from marketdata_assets.universe import CANDLE_VENUES, DVOL_CURRENCIES, VENUES

if TYPE_CHECKING:  # pragma: no cover
    from .faults import Fault

# What an instrument's metadata says about it. Each venue serves these in its own words (Binance
# TRADING/HALT/BREAK, Bybit Trading/PreLaunch/Closed, OKX live/suspend, a delisted OKX pair is gone).
INSTRUMENT_STATUSES = ("trading", "halted", "delisted")


@dataclass(frozen=True)
class SymbolSpec:
    """One synthetic spot market: where its price sits and how it trades.

    ``price`` is the day-open price on 2024-01-01 (the model's anchor day); other days wander from
    it in a mean-reverting daily walk. ``tick``/``lot`` are the venue's price tick and quantity step.
    ``minute_volume`` is the mean base volume of a minute; ``no_trade_rate`` the mean fraction of
    minutes without a trade (higher in quiet hours).
    """

    symbol: str
    price: float
    tick: float
    lot: float
    daily_vol: float = 0.03
    minute_volume: float = 10.0
    trades_per_minute: float = 300.0
    no_trade_rate: float = 0.0
    min_qty: float | None = None
    min_notional: float = 5.0
    listed: date = date(2017, 8, 17)

    @property
    def base(self) -> str:
        return self.symbol.split("/")[0]

    @property
    def quote(self) -> str:
        return self.symbol.split("/")[1]


_DEFAULT_SPECS = (
    SymbolSpec("BTC/USDT", 42_000.0, 0.01, 0.00001, 0.028, 15.0, 900.0, 0.0, 0.00001),
    SymbolSpec("ETH/USDT", 2_300.0, 0.01, 0.0001, 0.033, 250.0, 600.0, 0.0005, 0.0001),
    SymbolSpec("SOL/USDT", 100.0, 0.01, 0.001, 0.05, 2_500.0, 300.0, 0.002, 0.001),
    SymbolSpec("XRP/USDT", 0.62, 0.0001, 0.1, 0.04, 400_000.0, 200.0, 0.004, 0.1),
    SymbolSpec("DOGE/USDT", 0.09, 0.00001, 1.0, 0.05, 1_500_000.0, 150.0, 0.006, 1.0),
)
# Venues list the same pairs with their own ticks and steps (OKX BTC-USDT ticks 0.1, ...).
_VENUE_OVERRIDES: dict[str, dict[str, dict[str, float]]] = {
    "bybit": {
        "BTC/USDT": {"lot": 0.000001, "min_qty": 0.000048},
        "ETH/USDT": {"lot": 0.00001, "min_qty": 0.00062},
        "XRP/USDT": {"lot": 0.01, "min_qty": 0.98},
        "DOGE/USDT": {"lot": 0.1, "min_qty": 7.8},
    },
    "okx": {
        "BTC/USDT": {"tick": 0.1, "lot": 0.00000001, "min_qty": 0.00001},
        "ETH/USDT": {"lot": 0.000001, "min_qty": 0.0001},
        "XRP/USDT": {"lot": 0.000001, "min_qty": 1.0},
        "DOGE/USDT": {"tick": 0.00001, "lot": 0.000001, "min_qty": 10.0},
    },
}


def default_symbols(venue: str) -> list[SymbolSpec]:
    """The synthetic universe of a candle venue: BTC, ETH, SOL, XRP, DOGE against USDT."""
    overrides = _VENUE_OVERRIDES.get(venue, {})
    return [dataclasses.replace(spec, **overrides.get(spec.symbol, {})) for spec in _DEFAULT_SPECS]


@dataclass(frozen=True)
class ReplaySource:
    """Recorded rows served instead of (or beside) the synthetic market.

    ``instrument`` is a unified symbol (``BTC/USDT``) for candle venues, a currency (``BTC``) for
    Deribit DVOL. ``path`` is CSV (header ``timestamp,open,high,low,close[,volume]``, or the headerless
    12-column Binance archive format), Parquet or Feather.
    """

    venue: str
    instrument: str
    path: Path

    @classmethod
    def parse(cls, spec: str) -> ReplaySource:
        """``binance:BTC/USDT=path/to/file.csv`` or ``deribit:BTC=dvol.parquet``."""
        head, sep, path = spec.partition("=")
        venue, sep2, instrument = head.partition(":")
        if not sep or not sep2 or not path or not instrument:
            raise ValueError(f"replay spec must look like VENUE:SYMBOL=PATH, got {spec!r}")
        venue = venue.strip().lower()
        if venue not in VENUES:
            raise ValueError(f"replay spec {spec!r}: unknown venue {venue!r}")
        instrument = instrument.strip().upper()
        if venue != "deribit" and "/" not in instrument:
            raise ValueError(f"replay spec {spec!r}: candle venues need a unified symbol like BTC/USDT")
        return cls(venue, instrument, Path(path.strip()))


@dataclass(frozen=True)
class Outage:
    """A time range in which a venue has no candles at all (``symbol=None``: every symbol)."""

    venue: str
    start_ms: int
    end_ms: int
    symbol: str | None = None


def parse_time_ms(text: str | int | float) -> int:
    """``2024-01-02T03:00`` (UTC unless an offset is given), ``2024-01-02`` or epoch milliseconds."""
    if isinstance(text, int | float):
        return int(text)
    text = text.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


@dataclass
class SimulatorConfig:
    """Everything a simulator instance needs; every field has a working default.

    * ``seed``: the synthetic market and every random fault decision derive from it.
    * ``limits_enabled``: per-IP rate limits with each venue's real numbers and breach answers.
    * ``limit_scale``: multiplies every allowance (0.1 => 10x fewer requests per window).
    * ``window_scale``: multiplies every rate-limit window length (and Deribit's refill period).
    * ``ban_scale``: multiplies ban durations (Binance 2 min doubling up to 3 days, Bybit 10 min).
    * ``ban_after_strikes``: requests a client may still send while told to back off before the
      Binance 418 / Bybit 403 ban.
    * ``clock``: epoch seconds; "now" for candles (the still-open candle, nothing after it).
      Rate limits and bans always run on the real monotonic clock.
    * ``symbols``: per candle venue, the synthetic universe (default :func:`default_symbols`).
    * ``no_trade_rates``: override a symbol's no-trade-minute rate: ``{"SOL/USDT": 0.01}`` or
      ``{"okx:SOL/USDT": 0.01}``.
    * ``replay``: :class:`ReplaySource` objects or ``VENUE:INSTRUMENT=PATH`` strings.
    * ``faults``: :class:`~marketdata_assets.simulator.faults.Fault` objects or spec strings.
    * ``outages``: :class:`Outage` windows (data gaps) known from the start.
    * ``dvol_minute_history_days``: how far back 1-minute DVOL reaches (None: to 2021-03-24).
    * ``instrument_status``: what the venues' market metadata says about a symbol, by
      ``"venue:SYMBOL"`` or ``"SYMBOL"`` (every venue): ``trading`` (the default), ``halted`` or
      ``delisted``, served in each venue's own words; with a venue, a raw venue status is served
      as given (``{"bybit:SOL/USDT": "Delivering"}``). Candles stay served either way: history
      outlives a listing.
    """

    seed: int = 0
    limits_enabled: bool = True
    limit_scale: float = 1.0
    window_scale: float = 1.0
    ban_scale: float = 1.0
    ban_after_strikes: int = 3
    clock: Callable[[], float] = time.time
    symbols: dict[str, list[SymbolSpec]] | None = None
    no_trade_rates: dict[str, float] = field(default_factory=dict)
    replay: Sequence[ReplaySource | str] = ()
    faults: Sequence[Fault | str | dict[str, Any]] = ()
    outages: Sequence[Outage] = ()
    dvol_minute_history_days: int | None = None
    dvol_currencies: tuple[str, ...] = DVOL_CURRENCIES
    instrument_status: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.limit_scale <= 0 or self.window_scale <= 0 or self.ban_scale <= 0:
            raise ValueError("limit_scale, window_scale and ban_scale must be positive")
        if self.ban_after_strikes < 0:
            raise ValueError("ban_after_strikes must be >= 0")
        for key, status in self.instrument_status.items():
            _check_instrument_status(key, status)

    def set_instrument_status(self, key: str, status: str | None) -> None:
        """Change (``None``: reset to trading) a symbol's status on a running simulator."""
        if status is None:
            self.instrument_status.pop(key, None)
            return
        _check_instrument_status(key, status)
        self.instrument_status[key] = status

    def instrument_status_for(self, venue: str, symbol: str) -> str:
        """``trading``/``halted``/``delisted`` or a raw venue status for ``symbol`` on ``venue``."""
        statuses = self.instrument_status
        return statuses.get(f"{venue}:{symbol}", statuses.get(symbol, "trading"))

    def replay_sources(self) -> list[ReplaySource]:
        return [r if isinstance(r, ReplaySource) else ReplaySource.parse(str(r)) for r in self.replay]

    def symbols_for(self, venue: str) -> list[SymbolSpec]:
        specs = (self.symbols or {}).get(venue)
        specs = list(specs) if specs is not None else default_symbols(venue)
        out = []
        for spec in specs:
            rate = self.no_trade_rates.get(f"{venue}:{spec.symbol}", self.no_trade_rates.get(spec.symbol))
            out.append(spec if rate is None else dataclasses.replace(spec, no_trade_rate=float(rate)))
        return out


def _check_instrument_status(key: str, status: str) -> None:
    venue, sep, symbol = key.rpartition(":")
    if sep and venue not in CANDLE_VENUES:
        raise ValueError(
            f"instrument_status key {key!r}: unknown venue {venue!r}; expected one of {', '.join(CANDLE_VENUES)}"
        )
    if "/" not in symbol:
        raise ValueError(f"instrument_status key {key!r}: expected VENUE:BASE/QUOTE or BASE/QUOTE")
    if not isinstance(status, str) or not status.strip():
        raise ValueError(f"instrument_status[{key!r}]: expected a status string, got {status!r}")
    if not sep and status not in INSTRUMENT_STATUSES:
        raise ValueError(
            f"instrument_status[{key!r}] = {status!r}: without a venue the status must be one of "
            f"{', '.join(INSTRUMENT_STATUSES)} (raw venue statuses need VENUE:SYMBOL)"
        )


def served_status(
    config: SimulatorConfig, venue: str, symbol: str, raw_names: Mapping[str, str | None]
) -> str | None:
    """The status a venue serves for ``symbol``: ``raw_names`` turns trading/halted/delisted into the
    venue's word (``None``: the venue drops the pair from its listing); a raw status passes as is."""
    status = config.instrument_status_for(venue, symbol)
    return raw_names.get(status, status)
