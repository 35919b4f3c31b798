"""What backtests import: :class:`MarketDataClient` reads the served Parquet layer, nothing else.

Example::

    from marketdata_assets.client import MarketDataClient

    client = MarketDataClient(mode="backtest")          # root from MARKETDATA_ROOT or the settings
    candles = client.get_historical_data(
        symbol="BTC/USDT", exchange="bybit", timeframe="1h",
        start_date="2023-01-01", end_date="2024-01-01",  # start inclusive, end exclusive
    )
    client.available()                                  # what is stored
    client.duckdb().sql("SELECT exchange, count(*) FROM candles GROUP BY ALL").df()

Every argument that names something (symbol, exchange, timeframe, currency) is checked against a
strict pattern and against what is stored before it reaches a path or a query; an unknown one raises
one :class:`MarketDataError` that lists what exists.
"""

from __future__ import annotations

import os
import re
from datetime import date, datetime
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from marketdata_assets.frames import symbol_key
from marketdata_assets.storage import catalog, served
from marketdata_assets.storage.root import StorageRoot

MODES = ("backtest",)
CANDLE_COLUMNS = ["open", "high", "low", "close", "volume", "n_minutes", "expected_minutes", "complete"]
DVOL_COLUMNS = ["open", "high", "low", "close", "filled"]

_SYMBOL_RE = re.compile(r"^[A-Za-z0-9]{2,15}(/[A-Za-z0-9]{2,10})?$")
_EXCHANGE_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_TIMEFRAME_RE = re.compile(r"^[0-9]{1,4}[smhdwM]$")
# a date string is read one way only: ISO 8601, a date or a datetime (naive = UTC, or with an offset)
_ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$")
_CURRENCY_RE = re.compile(r"^[A-Z0-9]{2,10}$")

DateLike = str | date | datetime | pd.Timestamp


class MarketDataError(ValueError):
    """A request the stored data cannot answer; the message says what exists instead."""


class MarketDataClient:
    """Read-only access to the served candles, DVOL and gaps under one storage root."""

    def __init__(
        self, mode: str = "backtest", root: str | os.PathLike[str] | StorageRoot | None = None
    ) -> None:
        """``root``: a path, ``file://`` or ``s3://`` URI, or a :class:`StorageRoot`. When None, the
        ``MARKETDATA_ROOT`` environment variable, else the settings' storage root
        (:func:`marketdata_assets.settings.load_settings`)."""
        if mode not in MODES:
            raise ValueError(f"unsupported mode {mode!r}; supported: {', '.join(MODES)}")
        self.mode = mode
        self.root = root if isinstance(root, StorageRoot) else StorageRoot.from_uri(_resolve_root(root))

    def __repr__(self) -> str:
        return f"MarketDataClient(mode={self.mode!r}, root={self.root.uri!r})"

    def get_historical_data(
        self,
        symbol: str,
        exchange: str,
        timeframe: str = "1h",
        start_date: DateLike | None = None,
        end_date: DateLike | None = None,
    ) -> pd.DataFrame:
        """Candles of one series with open time in ``[start_date, end_date)``: start inclusive, end
        exclusive (``"2023-01-01"`` .. ``"2024-01-01"`` is the whole of 2023).

        ``symbol``: ``"BTCUSDT"`` or ``"BTC/USDT"``. Dates: ISO strings (date or datetime), ``date``,
        ``datetime`` or ``pd.Timestamp``; naive values are UTC. Both dates are required.

        Returns a frame indexed by the candle open time (``DatetimeIndex`` named ``timestamp``, UTC)
        with columns open, high, low, close, volume, n_minutes, expected_minutes, complete. Only the
        month files overlapping the range are opened, and row groups outside it are skipped. Missing
        candles are not filled: see ``complete``/``n_minutes`` and the gaps table. A range inside the
        stored span that holds no candles (an outage) gives an empty frame; a range wholly outside it,
        an unknown series or a reversed/empty range raises :class:`MarketDataError`.
        """
        key = _checked_symbol(symbol)
        venue = _checked(
            exchange.lower() if isinstance(exchange, str) else exchange, _EXCHANGE_RE, "exchange"
        )
        tf = _checked(timeframe, _TIMEFRAME_RE, "timeframe")
        self._require_series(tf, venue, key)
        start, end = _checked_range(start_date, end_date)
        keys = served.candle_keys(tf, venue, key)
        table = served.read_range_table(self.root, served.CANDLES, keys, start, end)
        if table.num_rows == 0:
            self._require_overlap(served.CANDLES, keys, start, end)
        return _indexed(table, CANDLE_COLUMNS)

    def dvol(
        self,
        currency: str = "BTC",
        timeframe: str = "1h",
        start_date: DateLike | None = None,
        end_date: DateLike | None = None,
    ) -> pd.DataFrame:
        """Deribit DVOL in ``[start_date, end_date)`` (same date rules as :meth:`get_historical_data`),
        indexed by UTC timestamp with columns open, high, low, close, filled (True where the point was
        filled in rather than published)."""
        cur = _checked(currency.upper() if isinstance(currency, str) else currency, _CURRENCY_RE, "currency")
        tf = _checked(timeframe, _TIMEFRAME_RE, "timeframe")
        keys = {"timeframe": tf, "currency": cur}
        stored = served.DVOL.partitions(self.root)
        if keys not in stored:
            listing = ", ".join(f"{p['currency']} {p['timeframe']}" for p in stored) or "nothing yet"
            raise MarketDataError(
                f"no DVOL for currency={cur} timeframe={tf} at {self.root}; stored: {listing}"
            )
        start, end = _checked_range(start_date, end_date)
        table = served.read_range_table(self.root, served.DVOL, keys, start, end)
        if table.num_rows == 0:
            self._require_overlap(served.DVOL, keys, start, end)
        return _indexed(table, DVOL_COLUMNS)

    def available(self) -> pd.DataFrame:
        """One row per stored candle series: exchange, symbol, timeframe, first, last (open times,
        UTC), rows, incomplete_bins and gap_count (gaps recorded for the exchange/symbol)."""
        return catalog.inventory(self.root)

    def instruments(self, exchange: str | None = None) -> pd.DataFrame:
        """The instrument reference data of one exchange (or of every stored one, ``exchange=None``):
        one row per listed spot symbol with exchange, symbol, symbol_key, venue_id, base, quote,
        tick_size, amount_step, min_amount, min_notional, status (trading/halted/delisted), raw_status,
        listed_at (UTC, NaT where the venue does not say) and fetched_at. Written by the
        ``<venue>/instruments`` assets under ``reference/instruments/``."""
        from marketdata_assets.storage import reference

        stored = reference.instrument_exchanges(self.root)
        if exchange is None:
            if not stored:
                raise MarketDataError(f"no instrument reference data is stored yet at {self.root}")
            return reference.read_instruments(self.root)
        venue = _checked(
            exchange.lower() if isinstance(exchange, str) else exchange, _EXCHANGE_RE, "exchange"
        )
        if venue not in stored:
            raise MarketDataError(
                f"no instruments for exchange {venue!r} at {self.root}; stored: {', '.join(stored) or 'none'}"
            )
        return reference.read_instruments(self.root, venue)

    def duckdb(self) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with views ``candles``, ``dvol`` and ``gaps`` over the files
        (no database file, so it never blocks the pipeline). Example::

            con = client.duckdb()
            con.sql(\"\"\"
                SELECT symbol, avg(close) FROM candles
                WHERE exchange = 'binance' AND timeframe = '1d'
                  AND timestamp >= TIMESTAMPTZ '2024-01-01' AND timestamp < TIMESTAMPTZ '2024-02-01'
                GROUP BY symbol
            \"\"\").df()
        """
        return catalog.connect(self.root)

    def _require_series(self, timeframe: str, exchange: str, key: str) -> None:
        stored = served.CANDLES.partitions(self.root)
        if served.candle_keys(timeframe, exchange, key) in stored:
            return
        exchanges = sorted({p["exchange"] for p in stored})
        symbols = sorted({p["symbol"] for p in stored if p["exchange"] == exchange})
        timeframes = sorted(
            {p["timeframe"] for p in stored if p["exchange"] == exchange and p["symbol"] == key}
        )
        if not stored:
            reason = "no candles are stored yet"
        elif exchange not in exchanges:
            reason = f"unknown exchange {exchange!r} (stored: {', '.join(exchanges)})"
        elif key not in symbols:
            reason = f"unknown symbol {key!r} on {exchange} (stored: {', '.join(symbols)})"
        else:
            reason = f"no {timeframe!r} candles for {key} on {exchange} (stored: {', '.join(timeframes)})"
        raise MarketDataError(f"{reason} at {self.root}\n{self._listing()}")

    def _require_overlap(
        self, dataset: served.MonthlyDataset, keys: dict[str, str], start: pd.Timestamp, end: pd.Timestamp
    ) -> None:
        """Raise unless ``[start, end)`` overlaps the stored span of the series."""
        months = dataset.months(self.root, keys)
        if not months:
            raise MarketDataError(f"no rows stored for {keys} at {self.root}")
        only_time = [dataset.time_column]
        first = served.read_range(self.root, dataset, keys, *_month_span(months[0]), only_time)[
            "timestamp"
        ].min()
        last = served.read_range(self.root, dataset, keys, *_month_span(months[-1]), only_time)[
            "timestamp"
        ].max()
        if end <= first or start > last:
            raise MarketDataError(
                f"no rows for {keys} in [{start.isoformat()}, {end.isoformat()}): "
                f"stored from {first.isoformat()} to {last.isoformat()} (open times, UTC)"
            )

    def _listing(self) -> str:
        inventory = self.available()
        if inventory.empty:
            return "available: nothing"
        return "available:\n" + inventory.to_string(index=False)


def _resolve_root(root: str | os.PathLike[str] | None) -> str | os.PathLike[str]:
    if root is not None:
        return root
    env_root = os.environ.get("MARKETDATA_ROOT")
    if env_root:
        return env_root
    try:
        from marketdata_assets.settings import load_settings

        return load_settings().storage_root
    except Exception as exc:  # noqa: BLE001 - any failure means "no root configured"
        raise MarketDataError(
            "no storage root: pass MarketDataClient(root=...), set MARKETDATA_ROOT, or fix the settings "
            f"({type(exc).__name__}: {exc})"
        ) from exc


def _checked(value: Any, pattern: re.Pattern[str], what: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise MarketDataError(f"invalid {what} {value!r} (expected to match {pattern.pattern})")
    return value


def _checked_symbol(symbol: Any) -> str:
    return symbol_key(_checked(symbol, _SYMBOL_RE, "symbol"))


def _utc(value: Any, what: str) -> pd.Timestamp:
    if value is None:
        raise MarketDataError(f"{what} is required (ISO date string, date, datetime or pd.Timestamp)")
    if isinstance(value, bool) or not isinstance(value, str | date | datetime | pd.Timestamp):
        raise MarketDataError(
            f"{what}: expected an ISO date string, date, datetime or pd.Timestamp, got {value!r}"
        )
    if isinstance(value, str) and not _ISO_RE.fullmatch(value):
        raise MarketDataError(
            f"{what}: cannot parse {value[:40]!r} as an ISO date (YYYY-MM-DD or "
            "YYYY-MM-DDTHH:MM[:SS][+HH:MM]; naive = UTC)"
        )
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise MarketDataError(f"{what}: cannot parse {value!r} as a date ({exc})") from None
    if stamp is pd.NaT:
        raise MarketDataError(f"{what}: {value!r} is not a date")
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _checked_range(start_date: Any, end_date: Any) -> tuple[pd.Timestamp, pd.Timestamp]:
    start, end = _utc(start_date, "start_date"), _utc(end_date, "end_date")
    if end <= start:
        raise MarketDataError(
            f"empty or reversed range: start_date {start.isoformat()} must be before end_date "
            f"{end.isoformat()} (start inclusive, end exclusive)"
        )
    return start, end


def _month_span(month: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    start = pd.Timestamp(f"{month}-01", tz="UTC")
    return start, start + pd.offsets.MonthBegin(1)


def _indexed(table: pa.Table, columns: list[str]) -> pd.DataFrame:
    """The table's ``columns`` as one pandas conversion, indexed by its ``timestamp`` column
    (``datetime64[ms, UTC]``); no re-sort and no extra frame copy."""
    index = pd.DatetimeIndex(
        table.column("timestamp").to_pandas(coerce_temporal_nanoseconds=False), name="timestamp"
    )
    frame = table.select(columns).to_pandas(coerce_temporal_nanoseconds=False)
    frame.index = index
    return frame
