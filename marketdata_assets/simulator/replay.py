"""Load recorded 1-minute candles (and DVOL) for replay, recognising the file's layout from its data.

Accepted layouts (1m candles; DVOL files use the same layouts without ``volume``):

=============================  ==================================================================
Binance archive                data.binance.vision kline ``.zip`` or its ``.csv``: no header, 12
                               columns ``open_time, open, high, low, close, volume, close_time,
                               quote_volume, trades, taker_buy_base, taker_buy_quote, ignore``; open
                               time in epoch ms (microseconds in files since 2025). The extra columns
                               are served as recorded. Newer archives with a header row also work.
freqtrade                      ``.feather`` / ``.parquet`` with a ``date`` column (datetime), and
                               ``.json`` / ``.json.gz``: ``[[date_ms, open, high, low, close, volume], ...]``
QuantConnect LEAN minute       crypto trade bars: ``20240101_trade.zip`` holding
                               ``20240101_btcusdt_minute_trade.csv``, or that CSV unzipped; no header,
                               6 columns ``ms_since_midnight, open, high, low, close, volume`` (UTC);
                               the day comes from the ``YYYYMMDD_`` at the start of the file name
CSV with a header              ``timestamp, open, high, low, close, volume`` (``date``, ``datetime``,
                               ``time``, ``ts``, ``open_time`` name the timestamp too); timestamps as
                               ISO text (naive = UTC) or epoch numbers
headerless CSV                 ``timestamp, open, high, low, close[, volume, ...]`` (5 to 11 columns),
                               epoch timestamps
Parquet / Feather              the same columns as the CSV with a header
=============================  ==================================================================

How the layout is recognised, from the data and never from a guess: the container by file name
(``.zip`` must hold exactly one CSV; ``.json``; ``.parquet``; ``.feather``; else CSV); a header by its
first row (any non-number after the first field); a headerless CSV by its column count and the
magnitude of its first column (below 86 400 000 = milliseconds since midnight = LEAN, which needs
the date in the file name; 12 columns = Binance archive); the epoch unit by magnitude: seconds,
milliseconds, microseconds or nanoseconds, whichever puts every timestamp between 2009-01-01 and
tomorrow (the ranges do not overlap). A file that fits none of this is refused with one
:class:`ReplayFileError` naming the file and the reason: an unknown layout, a timestamp magnitude
that fits no unit, a LEAN file without its date, timestamps off minute boundaries, dates before
2009 or in the future, rows spaced like 5m (or coarser) candles.

Price and volume decimals are inferred from the recorded text (CSV) or values (Parquet, Feather,
JSON), so replayed rows come back with the recorded digits.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import time
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .market import Candles, DvolRows

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

MINUTE_MS = 60_000
DAY_MS = 86_400_000
FIRST_PLAUSIBLE_MS = 1_230_768_000_000  # 2009-01-01 UTC: nothing traded on an exchange before
FUTURE_SLACK_MS = DAY_MS
SPACING_MIN_ROWS = 10  # files this long whose every gap is a multiple of 2+ minutes are not 1m data

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
LEAN_COLUMNS = ["timestamp", "open", "high", "low", "close", "volume"]
_TIMESTAMP_NAMES = ("timestamp", "date", "datetime", "open_time", "open time", "opentime", "time", "ts")
_ALIASES = {
    **dict.fromkeys(_TIMESTAMP_NAMES, "timestamp"),
    "quote_asset_volume": "quote_volume",
    "count": "trades",
    "number_of_trades": "trades",
    "taker_buy_volume": "taker_base",
    "taker_buy_base_asset_volume": "taker_base",
    "taker_buy_quote_volume": "taker_quote",
    "taker_buy_quote_asset_volume": "taker_quote",
}
# (name, multiplier, divisor) turning a value in that unit into epoch milliseconds
_UNITS = (("seconds", 1000, 1), ("milliseconds", 1, 1), ("microseconds", 1, 1000), ("nanoseconds", 1, 10**6))
_LEAN_DATE = re.compile(r"^(\d{8})_")


class ReplayFileError(ValueError):
    """A replay file the simulator will not serve: names the file and the one reason."""

    def __init__(self, where: Path | str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where = str(where)
        self.reason = reason


@dataclass
class ReplayTable:
    """A replay file as a frame with canonical column names (timestamps still as recorded)."""

    frame: pd.DataFrame
    as_text: bool  # values kept their recorded text (CSV)
    layout: str  # what the file was recognised as, for messages
    where: str  # the file (and zip member) for messages
    day_ms: int | None = None  # LEAN: timestamps count milliseconds from this UTC midnight


# -- detection and one reader per layout ---------------------------------------------------------


def read_table(path: Path) -> ReplayTable:
    """Recognise the layout of ``path`` and read it; :class:`ReplayFileError` when it fits none."""
    import pandas as pd
    import pyarrow as pa

    path = Path(path)
    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            return _columnar(pd.read_parquet(path), "Parquet", path)
        if name.endswith(".feather"):
            return _columnar(pd.read_feather(path), "Feather", path)
        if name.endswith((".json", ".json.gz")):
            return _freqtrade_json(path)
        if name.endswith(".zip"):
            return _zip(path)
        if name.endswith((".csv", ".txt")):
            return _csv(path.read_bytes().decode("utf-8-sig"), str(path), [path.name])
    except ReplayFileError:
        raise
    except (
        ValueError,
        UnicodeDecodeError,
        zipfile.BadZipFile,
        pd.errors.ParserError,
        pa.ArrowException,
    ) as exc:
        raise ReplayFileError(path, f"cannot be read: {exc}") from exc
    raise ReplayFileError(
        path,
        f"unsupported replay file type {path.suffix!r} "
        "(csv, zip, json, json.gz, parquet, feather; see marketdata-sim --help)",
    )


def _canonical(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    frame = frame.rename(columns=lambda c: _ALIASES.get(str(c).strip().lower(), str(c).strip().lower()))
    if "timestamp" not in frame.columns and str(frame.index.name).lower() in _TIMESTAMP_NAMES:
        frame = frame.reset_index()
        frame = frame.rename(columns={frame.columns[0]: "timestamp"})
    duplicated = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1})
    if duplicated:
        raise ReplayFileError(where, f"several columns mean {', '.join(duplicated)}: {list(frame.columns)}")
    return frame


def _columnar(frame: pd.DataFrame, layout: str, path: Path) -> ReplayTable:
    return ReplayTable(_canonical(frame, str(path)), False, layout, str(path))


def _freqtrade_json(path: Path) -> ReplayTable:
    """freqtrade's ``[[date_ms, open, high, low, close, volume], ...]`` (``.json`` or ``.json.gz``)."""
    import pandas as pd

    raw = path.read_bytes()
    if path.name.lower().endswith(".gz"):
        raw = gzip.decompress(raw)
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ReplayFileError(path, f"not JSON: {exc}") from exc
    if not isinstance(data, list) or not data:
        raise ReplayFileError(
            path, "JSON must be a non-empty list of [date_ms, open, high, low, close, volume] rows"
        )
    if all(isinstance(row, dict) for row in data):  # records: [{"date": ..., "open": ...}, ...]
        return ReplayTable(_canonical(pd.DataFrame(data), str(path)), False, "JSON records", str(path))
    if not all(isinstance(row, list) and len(row) >= 5 for row in data):
        raise ReplayFileError(path, "JSON rows must be [date_ms, open, high, low, close, volume] lists")
    width = min(6, *(len(row) for row in data))
    frame = pd.DataFrame([row[:width] for row in data], columns=LEAN_COLUMNS[:width])
    return ReplayTable(frame, False, "freqtrade JSON", str(path))


def _zip(path: Path) -> ReplayTable:
    """A Binance archive zip or a LEAN minute zip: exactly one CSV inside."""
    with zipfile.ZipFile(path) as archive:
        members = [
            info
            for info in archive.infolist()
            if not info.is_dir()
            and not info.filename.startswith("__MACOSX/")
            and info.filename.lower().endswith((".csv", ".txt"))
        ]
        if len(members) != 1:
            listed = ", ".join(m.filename for m in members) or "none"
            raise ReplayFileError(
                path, f"a replay zip must hold exactly one CSV, this one holds {len(members)} ({listed})"
            )
        member = members[0]
        text = archive.read(member).decode("utf-8-sig")
    return _csv(text, f"{path} ({member.filename})", [Path(member.filename).name, path.name])


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _csv(text: str, where: str, names: list[str]) -> ReplayTable:
    """A CSV with or without a header; ``names``: the file names a LEAN date may be read from."""
    import pandas as pd

    first = next((row for row in csv.reader(io.StringIO(text)) if any(c.strip() for c in row)), None)
    if first is None:
        raise ReplayFileError(where, "holds no rows")
    if not all(_is_number(cell) for cell in first[1:]):  # a header row: names after the first field
        frame = pd.read_csv(io.StringIO(text), dtype=str, skipinitialspace=True)
        return ReplayTable(_canonical(frame, where), True, "CSV with a header", where)
    frame = pd.read_csv(io.StringIO(text), header=None, dtype=str, skipinitialspace=True)
    width = frame.shape[1]
    leading = pd.to_numeric(frame[0], errors="coerce")
    if leading.notna().all() and leading.min() >= 0 and leading.max() < DAY_MS:
        return _lean(frame, where, names, int(leading.max()))
    if width >= 12:
        frame = frame.iloc[:, :12]
        frame.columns = ARCHIVE_COLUMNS
        return ReplayTable(frame, True, "Binance archive kline CSV", where)
    if width >= 5:
        frame.columns = ARCHIVE_COLUMNS[:width]
        return ReplayTable(frame, True, "headerless CSV", where)
    raise ReplayFileError(
        where,
        f"headerless CSV with {width} column(s): expected 12 (Binance archive), 6 (LEAN minute trade bars, "
        "or timestamp,open,high,low,close,volume) or 5 (timestamp,open,high,low,close)",
    )


def _lean(frame: pd.DataFrame, where: str, names: list[str], largest: int) -> ReplayTable:
    """LEAN minute trade bars: ``ms_since_midnight, open, high, low, close, volume``; day from the name."""
    width = frame.shape[1]
    if width != 6:
        kind = " (LEAN quote bars: bid and ask OHLC and sizes)" if width == 11 else ""
        raise ReplayFileError(
            where,
            f"first column is below 86400000 (milliseconds since midnight, LEAN) but the file has {width} "
            f"columns{kind}; only LEAN trade bars (ms, open, high, low, close, volume) are replayed",
        )
    days = {}
    for name in names:
        match = _LEAN_DATE.match(name)
        if match:
            try:
                day = datetime.strptime(match.group(1), "%Y%m%d").replace(tzinfo=UTC)
            except ValueError:
                continue
            days[name] = int(day.timestamp() * 1000)
    if not days:
        raise ReplayFileError(
            where,
            f"looks like LEAN minute trade bars (first column up to {largest}: milliseconds since midnight) "
            f"but no date is in the file name {' / '.join(names)!r}; LEAN names it like "
            "20240101_btcusdt_minute_trade.csv (inside 20240101_trade.zip)",
        )
    if len(set(days.values())) > 1:
        raise ReplayFileError(where, f"LEAN file names disagree on the day: {', '.join(days)}")
    frame.columns = LEAN_COLUMNS
    return ReplayTable(frame, True, "LEAN minute trade bars", where, day_ms=next(iter(days.values())))


# -- timestamps --------------------------------------------------------------------------------


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _epoch_ms(values: np.ndarray, where: str) -> np.ndarray:
    """Epoch integers in whichever unit puts all of them between 2009 and tomorrow."""
    latest = int(time.time() * 1000) + FUTURE_SLACK_MS
    lo, hi = int(values.min()), int(values.max())
    for unit, multiplier, divisor in _UNITS:
        if lo * multiplier // divisor >= FIRST_PLAUSIBLE_MS and hi * multiplier // divisor <= latest:
            off = values % (MINUTE_MS * divisor // multiplier) != 0
            if off.any():
                raise ReplayFileError(
                    where,
                    f"timestamps ({unit}) are not on minute boundaries, e.g. {int(values[off][0])} = "
                    f"{_iso(int(values[off][0]) * multiplier // divisor)}; 1m candles open at whole minutes",
                )
            return values * multiplier // divisor
    raise ReplayFileError(
        where,
        f"timestamps {lo}..{hi} fit no epoch unit (seconds, milliseconds, microseconds, nanoseconds) "
        f"between {_iso(FIRST_PLAUSIBLE_MS)[:10]} and {_iso(latest)[:10]}",
    )


def _check_ms(ms: np.ndarray, where: str, source: str) -> np.ndarray:
    latest = int(time.time() * 1000) + FUTURE_SLACK_MS
    if ms.min() < FIRST_PLAUSIBLE_MS:
        raise ReplayFileError(
            where, f"{source} give {_iso(int(ms.min()))}, before {_iso(FIRST_PLAUSIBLE_MS)[:10]}"
        )
    if ms.max() > latest:
        raise ReplayFileError(where, f"{source} give {_iso(int(ms.max()))}, in the future")
    off = ms % MINUTE_MS != 0
    if off.any():
        raise ReplayFileError(
            where,
            f"{source} are not on minute boundaries, e.g. {_iso(int(ms[off][0]))}.{int(ms[off][0]) % 1000:03d}; "
            "1m candles open at whole minutes",
        )
    return ms


def timestamps_ms(table: ReplayTable) -> np.ndarray:
    """Candle open times of ``table`` in epoch milliseconds, checked (see the module docstring)."""
    import pandas as pd

    column, where = table.frame["timestamp"], table.where
    if len(column) == 0:
        raise ReplayFileError(where, "holds no rows")
    if column.isna().any():
        raise ReplayFileError(where, f"row {int(np.argmax(column.isna().to_numpy())) + 1} has no timestamp")
    if table.day_ms is not None:
        offsets = pd.to_numeric(column).astype("int64").to_numpy()
        return _check_ms(
            table.day_ms + offsets, where, f"milliseconds since {_iso(table.day_ms)[:10]} (LEAN)"
        )
    if pd.api.types.is_datetime64_any_dtype(column):
        ms = pd.to_datetime(column, utc=True).dt.as_unit("ms").astype("int64").to_numpy()
        return _check_ms(ms, where, "datetimes")
    numbers = pd.to_numeric(column, errors="coerce")
    if numbers.notna().all():
        values = numbers.to_numpy()
        if values.dtype.kind == "f":
            if not np.all(values == np.floor(values)):
                raise ReplayFileError(where, "epoch timestamps are not whole numbers")
            values = values.astype("int64")
        return _epoch_ms(values.astype("int64"), where)
    if numbers.notna().any():
        example = column[numbers.isna()].iloc[0]
        raise ReplayFileError(where, f"timestamp column mixes epoch numbers and text such as {example!r}")
    try:
        parsed = pd.to_datetime(column.astype(str).str.strip(), utc=True, format="ISO8601")
    except (ValueError, TypeError) as exc:
        raise ReplayFileError(
            where, f"timestamps are neither epoch numbers nor ISO datetimes: {exc}"
        ) from exc
    return _check_ms(parsed.dt.as_unit("ms").astype("int64").to_numpy(), where, "datetimes")


def _check_one_minute(ts: np.ndarray, where: str) -> None:
    steps = np.diff(np.unique(ts))
    if len(steps) + 1 >= SPACING_MIN_ROWS:
        step = int(np.gcd.reduce(steps))
        if step > MINUTE_MS:
            raise ReplayFileError(
                where,
                f"every gap between rows is a multiple of {step // MINUTE_MS} minutes: "
                "these look like coarser candles, and the simulator replays 1m candles",
            )


# -- candles and DVOL --------------------------------------------------------------------------


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


def _require(table: ReplayTable, columns: list[str]) -> None:
    missing = [c for c in columns if c not in table.frame.columns]
    if missing:
        raise ReplayFileError(
            table.where,
            f"replay file ({table.layout}) lacks column(s) {', '.join(missing)}; has {list(table.frame.columns)}",
        )


def load_candles(path: Path) -> Candles:
    """Recorded 1-minute candles of one symbol."""
    import pandas as pd

    table = read_table(path)
    _require(table, ["timestamp", "open", "high", "low", "close", "volume"])
    frame, as_text = table.frame, table.as_text
    ts = timestamps_ms(table)
    _check_one_minute(ts, table.where)

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

    table = read_table(path)
    _require(table, ["timestamp", "open", "high", "low", "close"])
    ts = timestamps_ms(table).astype(np.int64)
    values = [
        pd.to_numeric(table.frame[n], errors="coerce").astype("float64").to_numpy()
        for n in ("open", "high", "low", "close")
    ]
    return DvolRows(ts, *values)
