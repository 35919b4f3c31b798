"""Load recorded candles (and DVOL) for replay.

Accepted files:

* CSV with a header: ``timestamp,open,high,low,close,volume`` (DVOL: no ``volume``); ``date`` or
  ``open_time`` may stand for ``timestamp``.
* The headerless Binance bulk-archive kline CSV (data.binance.vision): 12 columns
  ``open_time, open, high, low, close, volume, close_time, quote_volume, trades,
  taker_buy_base, taker_buy_quote, ignore``; its extra columns are served as recorded.
* Parquet or Feather with the same columns.

Timestamps are candle open times: integer epoch milliseconds (seconds and microseconds are
recognised by magnitude) or datetimes (naive = UTC). Price and volume decimals are inferred from
the recorded text (CSV) or values (Parquet), so replayed rows come back with the recorded digits.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .market import Candles, DvolRows

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

ARCHIVE_COLUMNS = [
    "timestamp",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "trades",
    "taker_base",
    "taker_quote",
    "ignore",
]
_ALIASES = {"date": "timestamp", "open_time": "timestamp", "time": "timestamp", "ts": "timestamp"}


def _decimals_in_text(values: pd.Series) -> int:
    text = values.astype(str)
    fraction = text.str.partition(".")[2].str.rstrip("0")
    return int(min(8, fraction.str.len().max() or 0))


def _decimals_in_values(values: np.ndarray) -> int:
    finite = values[np.isfinite(values)]
    for decimals in range(0, 9):
        scaled = finite * 10**decimals
        if np.all(np.abs(scaled - np.rint(scaled)) <= 1e-6 * np.maximum(1.0, np.abs(scaled))):
            return decimals
    return 8


def _timestamps_ms(column: pd.Series) -> np.ndarray:
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(column):
        series = pd.to_datetime(column, utc=True)
        return series.dt.as_unit("ms").astype("int64").to_numpy()
    values = pd.to_numeric(column).astype("int64").to_numpy()
    if len(values) == 0:
        return values
    magnitude = int(np.abs(values).max())
    if magnitude >= 10**14:  # microseconds (newer Binance archive files)
        return values // 1000
    if magnitude < 10**11:  # seconds
        return values * 1000
    return values


def read_table(path: Path) -> tuple[pd.DataFrame, bool]:
    """The file as a frame with canonical column names, and whether values kept their text."""
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        frame = pd.read_parquet(path)
        as_text = False
    elif suffix == ".feather":
        frame = pd.read_feather(path)
        as_text = False
    elif suffix in (".csv", ".txt"):
        with path.open(newline="") as handle:
            first = next(csv.reader(handle), [])
        headerless = bool(first) and first[0].strip().lstrip("-").isdigit()
        if headerless:
            frame = pd.read_csv(path, header=None, dtype=str)
            names = ARCHIVE_COLUMNS if frame.shape[1] >= 12 else ARCHIVE_COLUMNS[: frame.shape[1]]
            frame = frame.iloc[:, : len(names)]
            frame.columns = names
        else:
            frame = pd.read_csv(path, dtype=str)
        as_text = True
    else:
        raise ValueError(f"{path}: unsupported replay file type {suffix!r} (csv, parquet, feather)")
    frame = frame.rename(columns=lambda c: _ALIASES.get(str(c).strip().lower(), str(c).strip().lower()))
    if "timestamp" not in frame.columns and frame.index.name in _ALIASES:
        frame = frame.reset_index().rename(columns={frame.index.name: "timestamp"})
    return frame, as_text


def _require(frame: pd.DataFrame, path: Path, columns: list[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{path}: replay file lacks column(s) {', '.join(missing)}; has {list(frame.columns)}"
        )


def load_candles(path: Path) -> Candles:
    """Recorded 1-minute candles of one symbol."""
    import pandas as pd

    frame, as_text = read_table(path)
    _require(frame, path, ["timestamp", "open", "high", "low", "close", "volume"])
    ts = _timestamps_ms(frame["timestamp"])

    def numbers(name: str) -> np.ndarray:
        return pd.to_numeric(frame[name], errors="coerce").astype("float64").to_numpy()

    o, h, low, c, v = (numbers(n) for n in ("open", "high", "low", "close", "volume"))
    if as_text:
        price_decimals = max(_decimals_in_text(frame[n]) for n in ("open", "high", "low", "close"))
        volume_decimals = _decimals_in_text(frame["volume"])
    else:
        price_decimals = max(_decimals_in_values(x) for x in (o, h, low, c))
        volume_decimals = _decimals_in_values(v)
    vwap = (o + h + low + c) / 4.0
    quote = numbers("quote_volume") if "quote_volume" in frame.columns else v * vwap
    if "trades" in frame.columns:
        trades = pd.to_numeric(frame["trades"], errors="coerce").fillna(0).astype("int64").to_numpy()
    else:
        trades = np.where(v > 0, np.maximum(1, np.rint(np.sqrt(np.maximum(v, 0)))), 0).astype(np.int64)
    taker_base = numbers("taker_base") if "taker_base" in frame.columns else v / 2.0
    taker_quote = numbers("taker_quote") if "taker_quote" in frame.columns else taker_base * vwap
    return Candles(
        ts=ts.astype(np.int64),
        open=o,
        high=h,
        low=low,
        close=c,
        volume=v,
        quote_volume=quote,
        trades=trades,
        taker_base=taker_base,
        taker_quote=taker_quote,
        price_decimals=price_decimals,
        volume_decimals=volume_decimals,
    )


def load_dvol(path: Path) -> DvolRows:
    """Recorded DVOL rows ``timestamp, open, high, low, close``."""
    import pandas as pd

    frame, _ = read_table(path)
    _require(frame, path, ["timestamp", "open", "high", "low", "close"])
    ts = _timestamps_ms(frame["timestamp"]).astype(np.int64)
    values = [
        pd.to_numeric(frame[n], errors="coerce").astype("float64").to_numpy()
        for n in ("open", "high", "low", "close")
    ]
    return DvolRows(ts, *values)
