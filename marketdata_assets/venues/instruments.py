"""Instrument reference data: what each candle venue lists, and the checks it makes possible.

:func:`fetch_instruments` loads a venue's spot markets through ccxt (``exchange.load_markets()``:
exactly one public request, see :mod:`marketdata_assets.venues.endpoints`) and turns them into one
canonical frame per venue (:data:`INSTRUMENT_COLUMNS`):

=============  ==============================================================================
column         meaning
=============  ==============================================================================
exchange       ``binance``, ``bybit``, ``okx``
symbol         unified spot symbol, ``BTC/USDT``
symbol_key     partition/file key, ``BTCUSDT`` (:func:`marketdata_assets.frames.symbol_key`)
venue_id       the venue's own id: ``BTCUSDT`` (Binance, Bybit), ``BTC-USDT`` (OKX)
base, quote    ``BTC``, ``USDT``
tick_size      price grid step (Binance ``PRICE_FILTER.tickSize``, Bybit ``priceFilter.tickSize``,
               OKX ``tickSz``)
amount_step    quantity step (Binance ``LOT_SIZE.stepSize``, Bybit ``lotSizeFilter.basePrecision``,
               OKX ``lotSz``)
min_amount     smallest order quantity (``LOT_SIZE.minQty``, ``minOrderQty``, ``minSz``); NaN if none
min_notional   smallest order value in quote currency (Binance ``NOTIONAL``/``MIN_NOTIONAL``,
               Bybit ``minOrderAmt``); NaN where the venue publishes none (OKX)
status         ``trading``, ``halted`` or ``delisted`` (:data:`STATUS_MAP`)
raw_status     the venue's own word (``TRADING``, ``BREAK``, ``Trading``, ``live``, ...)
listed_at      listing time, UTC, where the venue exposes it (OKX ``listTime``); else NaT
fetched_at     when the markets were loaded, UTC
=============  ==============================================================================

Values are read from each market's raw ``info`` (the venue's own fields), not from ccxt's unified
``precision``/``limits``, so the numbers and the field names in errors are the venue's. A market
without a usable value for a required field raises :class:`MalformedResponseError` naming venue,
symbol and field. Deribit DVOL is an index, not a tradable instrument: it has no reference data.

Status policy (:func:`validate_universe`): a configured symbol the venue does not list, or lists as
``delisted``, is an error (:class:`UniverseError`); ``halted`` is a warning only -- a halt is usually
temporary and the symbol's history stays fetchable, so stopping the pipeline would lose more than it
protects. A venue status this module does not know maps to ``halted`` (and so warns), never to
``trading``. Binance caveat: it keeps delisted pairs listed as ``BREAK`` and also uses ``BREAK``
briefly during maintenance; a refresh that lands in such a window fails and succeeds on the next.

:func:`off_tick_prices` is the round-trip check that stored candle prices sit on the tick grid.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from marketdata_assets.frames import PRICE_COLUMNS, TIMESTAMP_DTYPE, symbol_key
from marketdata_assets.universe import CANDLE_VENUES
from marketdata_assets.venues.base import FetchStats, MalformedResponseError, VenueError, close_matches
from marketdata_assets.venues.retry import FailureKind, RetryExhausted, RetryPolicy

INSTRUMENT_VENUES = CANDLE_VENUES
STATUSES = ("trading", "halted", "delisted")
INSTRUMENT_COLUMNS = [
    "exchange",
    "symbol",
    "symbol_key",
    "venue_id",
    "base",
    "quote",
    "tick_size",
    "amount_step",
    "min_amount",
    "min_notional",
    "status",
    "raw_status",
    "listed_at",
    "fetched_at",
]
STRING_COLUMNS = ["exchange", "symbol", "symbol_key", "venue_id", "base", "quote", "status", "raw_status"]
FLOAT_COLUMNS = ["tick_size", "amount_step", "min_amount", "min_notional"]
TIME_COLUMNS = ["listed_at", "fetched_at"]

# Each venue's documented statuses -> ours. Binance spot: PRE_TRADING, TRADING, POST_TRADING,
# END_OF_DAY, HALT, AUCTION_MATCH, BREAK (delisted pairs stay listed in BREAK). Bybit v5: PreLaunch,
# Trading, Settling, Delivering, Closed. OKX: live, suspend, preopen, test (delisted pairs leave the
# list, so they surface as unknown symbols).
STATUS_MAP: dict[str, dict[str, str]] = {
    "binance": {
        "TRADING": "trading",
        "HALT": "halted",
        "PRE_TRADING": "halted",
        "POST_TRADING": "halted",
        "END_OF_DAY": "halted",
        "AUCTION_MATCH": "halted",
        "BREAK": "delisted",
    },
    "bybit": {
        "Trading": "trading",
        "PreLaunch": "halted",
        "Settling": "halted",
        "Delivering": "halted",
        "Closed": "delisted",
    },
    "okx": {"live": "trading", "suspend": "halted", "preopen": "halted", "test": "halted"},
}
UNKNOWN_STATUS = "halted"


# -- the canonical frame ---------------------------------------------------------------------------


def empty_instruments() -> pd.DataFrame:
    """A zero-row instruments frame with the canonical columns and dtypes."""
    return _typed(pd.DataFrame({c: [] for c in INSTRUMENT_COLUMNS}))


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame[INSTRUMENT_COLUMNS].copy()
    for column in STRING_COLUMNS:
        out[column] = out[column].astype("string")
    for column in FLOAT_COLUMNS:
        out[column] = pd.to_numeric(out[column], errors="raise").astype("float64")
    for column in TIME_COLUMNS:
        out[column] = pd.to_datetime(out[column], utc=True).astype(TIMESTAMP_DTYPE)
    return out.reset_index(drop=True)


def map_status(venue: str, raw: str) -> str:
    """Our status (trading/halted/delisted) for a venue's raw status word; unknown words -> halted."""
    return STATUS_MAP.get(venue, {}).get(raw, UNKNOWN_STATUS)


@dataclass(frozen=True)
class _Fields:
    """Where one venue keeps each value in a market's raw ``info``: (path, name used in errors)."""

    venue_id: str
    status: str
    tick: tuple[tuple[str, ...], str]
    step: tuple[tuple[str, ...], str]
    min_amount: tuple[tuple[str, ...], str]
    min_notional: tuple[tuple[str, ...], str] | None
    listed: str | None


_FIELDS = {
    "binance": _Fields(
        venue_id="symbol",
        status="status",
        tick=(("filters", "PRICE_FILTER", "tickSize"), "PRICE_FILTER.tickSize"),
        step=(("filters", "LOT_SIZE", "stepSize"), "LOT_SIZE.stepSize"),
        min_amount=(("filters", "LOT_SIZE", "minQty"), "LOT_SIZE.minQty"),
        min_notional=(("filters", "NOTIONAL|MIN_NOTIONAL", "minNotional"), "NOTIONAL.minNotional"),
        listed=None,
    ),
    "bybit": _Fields(
        venue_id="symbol",
        status="status",
        tick=(("priceFilter", "tickSize"), "priceFilter.tickSize"),
        step=(("lotSizeFilter", "basePrecision"), "lotSizeFilter.basePrecision"),
        min_amount=(("lotSizeFilter", "minOrderQty"), "lotSizeFilter.minOrderQty"),
        min_notional=(("lotSizeFilter", "minOrderAmt"), "lotSizeFilter.minOrderAmt"),
        listed="launchTime",  # linear/inverse only today; read if a spot answer ever carries it
    ),
    "okx": _Fields(
        venue_id="instId",
        status="state",
        tick=(("tickSz",), "tickSz"),
        step=(("lotSz",), "lotSz"),
        min_amount=(("minSz",), "minSz"),
        min_notional=None,
        listed="listTime",
    ),
}


def instruments_from_markets(
    venue: str, markets: Mapping[str, Mapping[str, Any]], fetched_at: pd.Timestamp | None = None
) -> pd.DataFrame:
    """The canonical frame of a ccxt ``exchange.markets`` dict (spot markets only), sorted by symbol.

    Raises :class:`MalformedResponseError` (venue, symbol, field) for a market missing a required
    value, and when the venue lists no spot market at all.
    """
    if venue not in _FIELDS:
        raise ValueError(
            f"no instrument reference data for {venue!r}; expected one of {', '.join(INSTRUMENT_VENUES)}"
            + (" (Deribit DVOL is an index, not a listed instrument)" if venue == "deribit" else "")
        )
    fields = _FIELDS[venue]
    stamp = pd.Timestamp.now(tz="UTC") if fetched_at is None else pd.Timestamp(fetched_at)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    rows = []
    for unified, market in markets.items():
        if not isinstance(market, Mapping):
            raise MalformedResponseError(
                venue, str(unified), None, f"market entry is {type(market).__name__}"
            )
        if market.get("spot") is False or market.get("type") not in (None, "spot"):
            continue
        rows.append(_row(venue, fields, str(unified), market, stamp))
    if not rows:
        raise MalformedResponseError(
            venue, None, None, "market list holds no spot market (an empty or unparseable answer)"
        )
    frame = _typed(pd.DataFrame(rows, columns=INSTRUMENT_COLUMNS))
    return frame.sort_values("symbol", kind="stable").reset_index(drop=True)


def _row(venue: str, f: _Fields, unified: str, market: Mapping[str, Any], stamp: pd.Timestamp) -> list:
    info = market.get("info")
    if not isinstance(info, Mapping):
        raise MalformedResponseError(venue, unified, None, "market has no raw 'info' object")
    symbol = market.get("symbol") or unified
    base, quote = market.get("base"), market.get("quote")
    if not isinstance(symbol, str) or "/" not in symbol or not base or not quote:
        raise MalformedResponseError(venue, unified, None, f"market has no base/quote ({symbol!r})")
    venue_id = info.get(f.venue_id)
    if not isinstance(venue_id, str) or not venue_id:
        raise MalformedResponseError(venue, symbol, None, f"field {f.venue_id!r} missing or empty")
    raw_status = info.get(f.status)
    if not isinstance(raw_status, str) or not raw_status:
        raise MalformedResponseError(venue, symbol, None, f"field {f.status!r} missing or empty")
    tick = _positive(venue, symbol, info, *f.tick, required=True)
    step = _positive(venue, symbol, info, *f.step, required=True)
    min_amount = _positive(venue, symbol, info, *f.min_amount, required=False, allow_zero=True)
    min_notional = (
        _positive(venue, symbol, info, *f.min_notional, required=False, allow_zero=True)
        if f.min_notional
        else math.nan
    )
    listed = _listed_at(venue, symbol, info, f.listed)
    return [
        venue,
        symbol,
        symbol_key(symbol),
        venue_id,
        str(base),
        str(quote),
        tick,
        step,
        min_amount,
        min_notional,
        map_status(venue, raw_status),
        raw_status,
        listed,
        stamp,
    ]


def _lookup(info: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """A value in raw ``info``; a ``filters`` step picks Binance's filter by ``filterType`` (``A|B``)."""
    node: Any = info
    steps = list(path)
    while steps:
        key = steps.pop(0)
        if key == "filters":
            filters = node.get("filters") if isinstance(node, Mapping) else None
            if not isinstance(filters, list):
                return None
            wanted = steps.pop(0).split("|")
            node = next(
                (x for w in wanted for x in filters if isinstance(x, Mapping) and x.get("filterType") == w),
                None,
            )
            if node is None:
                return None
            continue
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _positive(
    venue: str,
    symbol: str,
    info: Mapping[str, Any],
    path: tuple[str, ...],
    name: str,
    *,
    required: bool,
    allow_zero: bool = False,
) -> float:
    raw = _lookup(info, path)
    if raw is None or raw == "":
        if required:
            raise MalformedResponseError(venue, symbol, None, f"field {name!r} missing")
        return math.nan
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise MalformedResponseError(
            venue, symbol, None, f"field {name!r} is not a number: {raw!r}"
        ) from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise MalformedResponseError(
            venue, symbol, None, f"field {name!r} must be {'>= 0' if allow_zero else '> 0'}, got {raw!r}"
        )
    return value


def _listed_at(venue: str, symbol: str, info: Mapping[str, Any], name: str | None) -> pd.Timestamp:
    raw = info.get(name) if name else None
    if raw is None or raw == "":
        return pd.NaT
    try:
        ms = int(str(raw))
    except ValueError:
        raise MalformedResponseError(
            venue, symbol, None, f"field {name!r} is not epoch ms: {raw!r}"
        ) from None
    if ms <= 0:
        return pd.NaT
    return pd.Timestamp(ms, unit="ms", tz="UTC")


# -- fetching ----------------------------------------------------------------------------------------


@dataclass
class InstrumentsFetch:
    """A venue's instruments and what loading them cost (requests, retries, last error)."""

    venue: str
    frame: pd.DataFrame
    stats: FetchStats


def load_instruments(
    venue: str,
    base_url: str | None = None,
    *,
    timeout_ms: int = 10_000,
    rate_limit_ms: float | None = None,
    max_retries: int | None = None,
    retry: RetryPolicy | None = None,
    clock: Callable[[], float] = time.time,
    **source_kwargs: Any,
) -> InstrumentsFetch:
    """The venue's spot instruments: one ``load_markets()`` request through the venue's candle
    source, so it shares that source's retries, pacing and rate-limit bookkeeping.

    ``base_url=None`` talks to the real venue, otherwise to that root (the simulator). A failed load
    raises :class:`VenueError`; an answer ccxt cannot parse, or a market missing a required field,
    raises :class:`MalformedResponseError` naming the venue (and the symbol and field).
    """
    if venue not in INSTRUMENT_VENUES:
        instruments_from_markets(venue, {})  # raises the "no reference data for ..." error
    from marketdata_assets.venues.registry import get_source

    source = get_source(
        venue,
        base_url,
        rate_limit_ms=rate_limit_ms,
        timeout_ms=timeout_ms,
        max_retries=max_retries,
        retry=retry,
        clock=clock,
        **source_kwargs,
    )
    try:
        try:
            source.check_symbols([])  # loads the markets (once, with the source's retry policy)
        except MalformedResponseError:
            raise
        except VenueError as exc:
            cause = exc.__cause__
            if isinstance(cause, RetryExhausted) and cause.failure.kind is FailureKind.MALFORMED:
                raise MalformedResponseError(
                    venue, None, None, f"market list unparseable ({cause.reason})", exc.last_error
                ) from exc
            raise
        # The source keeps its ccxt client private; the loaded markets are read from it here.
        markets = source._exchange.markets or {}  # noqa: SLF001
        frame = instruments_from_markets(venue, markets, pd.Timestamp(clock(), unit="s", tz="UTC"))
        return InstrumentsFetch(venue, frame, source.market_stats)
    finally:
        source.close()


def fetch_instruments(venue: str, base_url: str | None = None, **kwargs: Any) -> pd.DataFrame:
    """:func:`load_instruments` without the stats: just the canonical frame."""
    return load_instruments(venue, base_url, **kwargs).frame


# -- the configured universe -----------------------------------------------------------------------


class UniverseError(VenueError):
    """Configured symbols a venue does not list (with close matches) or lists as delisted."""

    def __init__(
        self,
        venue: str,
        unknown: Mapping[str, Sequence[str]],
        delisted: Mapping[str, str],
        halted: Mapping[str, str] | None = None,
    ) -> None:
        self.unknown = {s: list(m) for s, m in unknown.items()}
        self.delisted = dict(delisted)
        self.halted = dict(halted or {})
        parts = []
        for symbol, matches in self.unknown.items():
            hint = f"did you mean {', '.join(matches)}?" if matches else "no close match"
            parts.append(f"{symbol!r} is not listed ({hint})")
        for symbol, raw in self.delisted.items():
            parts.append(f"{symbol!r} is delisted (venue status {raw!r})")
        message = "configured universe invalid: " + "; ".join(parts)
        if self.unknown:
            message += (
                " (venues drop delisted pairs from their lists: a pair that used to work and is now "
                "'not listed' was most likely delisted)"
            )
        if self.halted:
            message += "; also halted (not an error): " + ", ".join(
                f"{s} ({raw})" for s, raw in self.halted.items()
            )
        message += f". Fix venues.{venue}.symbols in the settings."
        super().__init__(venue, None, None, message)


@dataclass
class UniverseReport:
    """The outcome of a universe check that passed: halted symbols are warnings, not errors."""

    venue: str
    checked: list[str]
    halted: dict[str, str] = field(default_factory=dict)  # symbol -> raw venue status

    @property
    def warnings(self) -> list[str]:
        return [
            f"{self.venue} {symbol} is halted (venue status {raw!r}); its candles may stop until trading resumes"
            for symbol, raw in self.halted.items()
        ]


def validate_universe(
    configured_symbols: Iterable[str], instruments: pd.DataFrame, venue: str
) -> UniverseReport:
    """Check configured symbols against a venue's instruments frame.

    Raises :class:`UniverseError` naming every unknown symbol (with close matches among the listed
    ones) and every delisted one. Halted symbols pass with a warning in the returned report.
    """
    symbols = list(configured_symbols)
    rows = instruments[instruments["exchange"] == venue] if "exchange" in instruments else instruments
    by_symbol = {
        str(s): (str(st), str(raw))
        for s, st, raw in zip(rows["symbol"], rows["status"], rows["raw_status"], strict=True)
    }
    listed = [s for s, (status, _) in by_symbol.items() if status != "delisted"]
    unknown: dict[str, list[str]] = {}
    delisted: dict[str, str] = {}
    halted: dict[str, str] = {}
    for symbol in symbols:
        if symbol not in by_symbol:
            unknown[symbol] = close_matches(symbol, listed)
            continue
        status, raw = by_symbol[symbol]
        if status == "delisted":
            delisted[symbol] = raw
        elif status == "halted":
            halted[symbol] = raw
    if unknown or delisted:
        raise UniverseError(venue, unknown, delisted, halted)
    return UniverseReport(venue, symbols, halted)


def check_settings_universe(settings: Any, venues: Iterable[str] | None = None) -> dict[str, UniverseReport]:
    """Fetch each configured candle venue's instruments and validate its symbols (for a CLI or a
    pre-flight check). ``settings`` is a :class:`~marketdata_assets.settings.LoadedSettings`.
    Raises the first :class:`UniverseError` / :class:`VenueError`; returns the reports otherwise."""
    reports = {}
    for venue, cfg in settings.venues.items():
        if venues is not None and venue not in venues:
            continue
        frame = fetch_instruments(
            venue,
            cfg.base_url,
            timeout_ms=cfg.timeout_ms,
            rate_limit_ms=cfg.rate_limit_ms,
            max_retries=cfg.max_retries,
        )
        reports[venue] = validate_universe(cfg.symbols, frame, venue)
    return reports


# -- the tick grid -----------------------------------------------------------------------------------


def off_tick_prices(
    candles: pd.DataFrame, tick_size: float, *, tolerance_ticks: float = 1e-6
) -> pd.DataFrame:
    """Rows of ``candles`` whose open/high/low/close are not whole multiples of ``tick_size``.

    A price is on the grid when it lies within ``tolerance_ticks`` ticks of a multiple of the tick,
    widened by the float rounding of the price itself (``1e-14`` of its size in ticks): parsing
    ``"42000.12"`` lands within ~1e-12 ticks of the grid, a real off-grid price is a sizeable
    fraction of a tick away. NaN prices are not judged here (the quality layer flags them).
    Returns those rows plus ``off_tick_columns`` (comma list of the offending columns).
    """
    if isinstance(tick_size, bool) or not isinstance(tick_size, int | float) or not tick_size > 0:
        raise ValueError(f"tick_size must be a positive number, got {tick_size!r}")
    if not math.isfinite(tick_size):
        raise ValueError(f"tick_size must be finite, got {tick_size!r}")
    missing = [c for c in PRICE_COLUMNS if c not in candles.columns]
    if missing:
        raise ValueError(f"candles frame lacks price columns {missing}")
    off = {}
    for column in PRICE_COLUMNS:
        ticks = candles[column].to_numpy(dtype="float64") / float(tick_size)
        distance = np.abs(ticks - np.rint(ticks))
        allowed = tolerance_ticks + np.abs(ticks) * 1e-14
        off[column] = np.nan_to_num(distance, nan=0.0) > np.nan_to_num(allowed, nan=0.0)
    mask = np.logical_or.reduce([off[c] for c in PRICE_COLUMNS])
    out = candles.loc[mask].copy()
    out["off_tick_columns"] = [",".join(c for c in PRICE_COLUMNS if off[c][i]) for i in np.flatnonzero(mask)]
    return out
