"""Pandera models of the candle frames and one validation entry point that returns a report.

Models (the columns of :mod:`marketdata_assets.frames`; extra columns are allowed, dtypes are not coerced):

* :class:`RawCandles` - per-row rules only, duplicates allowed: ``timestamp`` is
  ``datetime64[ms, UTC]`` aligned to the minute; open/high/low/close > 0; volume >= 0; no NaN or inf;
  ``high >= max(open, close)`` and ``low <= min(open, close)``.
* :class:`ValidatedCandles` - RawCandles plus unique and strictly increasing timestamps.
* :class:`RawDvol` / :class:`DvolCandles` - the same without volume, timestamps aligned to the second
  (Deribit's finest DVOL resolution is 1 s); DvolCandles adds unique, increasing timestamps.

"Every timestamp lies inside the partition's UTC day" depends on the day, so it is not part of a model:
:func:`validate_candles` runs ``Model.validate(df, lazy=True)`` plus that rule and returns a
:class:`ValidationReport`. Each failure carries a ``category`` (``schema`` / ``duplicates`` / ``ohlc``) so
the Dagster layer can turn one report into its separate asset checks.

Row indices in a report are positions (0-based row numbers) in the validated frame.
"""

import warnings
from collections import Counter, defaultdict
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors
from pandera.typing.pandas import Series

from marketdata_assets.frames import day_bounds_ms
from marketdata_assets.quality.tables import markdown_rows

SCHEMA = "schema"
DUPLICATES = "duplicates"
OHLC = "ohlc"
CATEGORIES = (SCHEMA, DUPLICATES, OHLC)

INSIDE_DAY = "inside_day"
_CATEGORY_OF_CHECK = {
    "field_uniqueness": DUPLICATES,
    "strictly_increasing": DUPLICATES,
    "high_ge_open_close": OHLC,
    "low_le_open_close": OHLC,
}
# A dataframe-level check fails a whole row; pandera reports it once per column. We report it once,
# against the column the rule is about.
_SUBJECT_OF_DATAFRAME_CHECK = {"high_ge_open_close": "high", "low_le_open_close": "low"}

UtcMs = Annotated[pd.DatetimeTZDtype, "ms", "UTC"]


def _is_strictly_increasing(timestamps: pd.Series) -> pd.Series:
    increasing = timestamps.diff() > pd.Timedelta(0)
    if len(increasing):
        increasing.iloc[0] = True
    return increasing


def _finite(values: pd.Series) -> pd.Series:
    return pd.Series(np.isfinite(values.to_numpy(dtype="float64")), index=values.index)


def _prices_known(df: pd.DataFrame, columns: tuple[str, ...]) -> bool:
    return all(c in df.columns for c in columns)


class _Prices(pa.DataFrameModel):
    """What candles and DVOL share: a UTC ms timestamp and consistent, positive, finite OHLC.

    Check methods are public and named like their checks: pandera 0.35 forgets the ``name=`` of an
    inherited check whose method name starts with an underscore and reports the method name instead.
    """

    timestamp: Series[UtcMs] = pa.Field(nullable=False)
    open: Series[float] = pa.Field(gt=0)
    high: Series[float] = pa.Field(gt=0)
    low: Series[float] = pa.Field(gt=0)
    close: Series[float] = pa.Field(gt=0)

    class Config:
        coerce = False
        strict = False

    @pa.check("open", "high", "low", "close", name="finite")
    def finite(cls, values: pd.Series) -> pd.Series:
        return _finite(values)

    @pa.dataframe_check(name="high_ge_open_close")
    def high_ge_open_close(cls, df: pd.DataFrame) -> pd.Series | bool:
        if not _prices_known(df, ("open", "high", "close")):
            return True  # the missing column is reported by its own check
        return ~((df["high"] < df["open"]) | (df["high"] < df["close"]))

    @pa.dataframe_check(name="low_le_open_close")
    def low_le_open_close(cls, df: pd.DataFrame) -> pd.Series | bool:
        if not _prices_known(df, ("open", "low", "close")):
            return True
        return ~((df["low"] > df["open"]) | (df["low"] > df["close"]))


class RawDvol(_Prices):
    """A DVOL frame as fetched: per-row rules, duplicates allowed."""

    @pa.check("timestamp", name="second_aligned")
    def second_aligned(cls, timestamps: pd.Series) -> pd.Series:
        return timestamps.dt.floor("s") == timestamps


class DvolCandles(RawDvol):
    """A stored DVOL frame: RawDvol plus unique, strictly increasing timestamps."""

    timestamp: Series[UtcMs] = pa.Field(nullable=False, unique=True)

    @pa.check("timestamp", name="strictly_increasing")
    def strictly_increasing(cls, timestamps: pd.Series) -> pd.Series:
        return _is_strictly_increasing(timestamps)


class RawCandles(_Prices):
    """A 1m candle frame as fetched: per-row rules, duplicates allowed."""

    volume: Series[float] = pa.Field(ge=0)

    @pa.check("timestamp", name="minute_aligned")
    def minute_aligned(cls, timestamps: pd.Series) -> pd.Series:
        return timestamps.dt.floor("min") == timestamps

    @pa.check("open", "high", "low", "close", "volume", name="finite")
    def finite(cls, values: pd.Series) -> pd.Series:
        return _finite(values)


class ValidatedCandles(RawCandles):
    """A cleaned 1m candle frame: RawCandles plus unique, strictly increasing timestamps."""

    timestamp: Series[UtcMs] = pa.Field(nullable=False, unique=True)

    @pa.check("timestamp", name="strictly_increasing")
    def strictly_increasing(cls, timestamps: pd.Series) -> pd.Series:
        return _is_strictly_increasing(timestamps)


@dataclass(frozen=True)
class CheckFailure:
    """One failed rule. ``index`` is the row position, ``None`` for a frame-level failure (dtype, column)."""

    check: str
    category: str
    column: str | None
    index: int | None
    value: Any
    timestamp: pd.Timestamp | None

    @property
    def reason(self) -> str:
        """``"<column>: <check>"`` (e.g. ``"volume: greater_than_or_equal_to(0)"``), or just the check."""
        return f"{self.column}: {self.check}" if self.column else self.check


@dataclass(frozen=True)
class ValidationReport:
    """What :func:`validate_candles` found: every failure, grouped as the asset checks need it."""

    model: str
    day: date | None
    rows: int
    failures: tuple[CheckFailure, ...]

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def failing_rows(self) -> frozenset[int]:
        """Positions of the rows that break at least one row-level rule."""
        return frozenset(f.index for f in self.failures if f.index is not None)

    @property
    def frame_failures(self) -> tuple[CheckFailure, ...]:
        """Failures of the frame as a whole (missing column, wrong dtype): no row can be blamed."""
        return tuple(f for f in self.failures if f.index is None)

    def in_category(self, category: str) -> "ValidationReport":
        """The same report restricted to one category (``schema``, ``duplicates`` or ``ohlc``)."""
        if category not in CATEGORIES:
            raise ValueError(f"unknown category {category!r}; expected one of {CATEGORIES}")
        kept = tuple(f for f in self.failures if f.category == category)
        return ValidationReport(self.model, self.day, self.rows, kept)

    def counts(self) -> dict[str, int]:
        """Number of failures per check name."""
        return dict(Counter(f.check for f in self.failures))

    def reasons_by_row(self) -> dict[int, list[str]]:
        """Row position -> the distinct reasons it failed, in report order."""
        reasons: dict[int, list[str]] = defaultdict(list)
        for failure in self.failures:
            if failure.index is not None and failure.reason not in reasons[failure.index]:
                reasons[failure.index].append(failure.reason)
        return dict(reasons)

    def failure_table(self, limit: int = 20) -> list[dict[str, Any]]:
        """The first ``limit`` failures as JSON-friendly dicts (check metadata)."""
        return [
            {
                "check": f.check,
                "category": f.category,
                "column": f.column,
                "row": f.index,
                "timestamp": None if f.timestamp is None or pd.isna(f.timestamp) else f.timestamp.isoformat(),
                "value": _jsonable(f.value),
            }
            for f in self.failures[:limit]
        ]

    def failure_markdown(self, limit: int = 20) -> str:
        """The first ``limit`` failures as a markdown table, with a line counting the rest."""
        if self.ok:
            return "No failures."
        header = ["check", "category", "column", "row", "timestamp", "value"]
        table = markdown_rows(header, ([row[h] for h in header] for row in self.failure_table(limit)))
        if len(self.failures) > limit:
            table += f"\n\n... and {len(self.failures) - limit} more failures"
        return table


def validate_candles(
    df: pd.DataFrame,
    day: date | None,
    *,
    model: type[pa.DataFrameModel] = ValidatedCandles,
) -> ValidationReport:
    """Validate ``df`` against ``model`` (lazily, collecting every failure) and, given a ``day``, check
    that every timestamp lies inside ``[day 00:00, next day 00:00)`` UTC."""
    frame = df.reset_index(drop=True)
    failures: list[CheckFailure] = []
    if not _certainly_passes(frame, model):  # else Pandera would report nothing: skip its ~6 ms a day
        failures.extend(_pandera_failures(frame, model))
    if day is not None:
        failures.extend(_outside_day(frame, day))
    # frame-level failures first, then by row; pandera's order is kept within a row
    failures.sort(key=lambda f: (f.index is not None, -1 if f.index is None else f.index))
    return ValidationReport(model=model.__name__, day=day, rows=len(frame), failures=tuple(failures))


def _pandera_failures(frame: pd.DataFrame, model: type[pa.DataFrameModel]) -> list[CheckFailure]:
    failures: list[CheckFailure] = []
    try:
        with warnings.catch_warnings():
            # pandera's own failure-case concat trips a pandas FutureWarning; nothing for us to act on
            warnings.filterwarnings("ignore", category=FutureWarning, module="pandera")
            model.validate(frame, lazy=True)
    except SchemaErrors as errors:
        failures.extend(_failures_from_pandera(errors.failure_cases, frame))
    return failures


# The rules of each model, restated over NumPy arrays for the common case of a frame that passes them
# all. ``_certainly_passes`` only ever answers "Pandera would report nothing": a frame it cannot vouch
# for (any failing row, an unexpected dtype, a model not listed here) goes to Pandera, so every report
# with failures is still Pandera's own. Pinned against Pandera by test_schemas.py.
_UTC_MS = pd.DatetimeTZDtype("ms", "UTC")
_FLOAT64 = np.dtype("float64")
# model -> (float columns, timestamp alignment in ms, unique and strictly increasing timestamps)
_FAST_RULES: dict[type, tuple[tuple[str, ...], int, bool]] = {
    RawCandles: (("open", "high", "low", "close", "volume"), 60_000, False),
    ValidatedCandles: (("open", "high", "low", "close", "volume"), 60_000, True),
    RawDvol: (("open", "high", "low", "close"), 1_000, False),
    DvolCandles: (("open", "high", "low", "close"), 1_000, True),
}


def _certainly_passes(frame: pd.DataFrame, model: type[pa.DataFrameModel]) -> bool:
    """True only when ``frame`` passes every rule of ``model`` (columns, dtypes, nulls, checks)."""
    rules = _FAST_RULES.get(model)
    if rules is None or not frame.columns.is_unique:
        return False
    floats, align_ms, increasing = rules
    if "timestamp" not in frame.columns or any(c not in frame.columns for c in floats):
        return False
    if frame["timestamp"].dtype != _UTC_MS or any(frame[c].dtype != _FLOAT64 for c in floats):
        return False
    stamps = frame["timestamp"].array.asi8
    if (stamps == np.iinfo(np.int64).min).any() or (stamps % align_ms).any():  # NaT, misaligned
        return False
    if increasing and len(stamps) > 1 and not (stamps[1:] > stamps[:-1]).all():
        return False
    values = {c: frame[c].to_numpy() for c in floats}
    for column, v in values.items():
        if not np.isfinite(v).all() or not ((v >= 0) if column == "volume" else (v > 0)).all():
            return False
    o, h, low, c = values["open"], values["high"], values["low"], values["close"]
    return bool((h >= o).all() and (h >= c).all() and (low <= o).all() and (low <= c).all())


def _failures_from_pandera(cases: pd.DataFrame, frame: pd.DataFrame) -> list[CheckFailure]:
    timestamps = _timestamps_by_position(frame)
    failures: list[CheckFailure] = []
    seen_dataframe_checks: set[tuple[str, int]] = set()
    for case in cases.itertuples(index=False):
        check = str(case.check)
        column = None if case.column is None else str(case.column)
        index = None if case.index is None or pd.isna(case.index) else int(case.index)
        value = case.failure_case
        if check == "column_in_dataframe":
            column = str(value)
        elif check in _SUBJECT_OF_DATAFRAME_CHECK and index is not None:
            if (check, index) in seen_dataframe_checks:
                continue
            seen_dataframe_checks.add((check, index))
            column = _SUBJECT_OF_DATAFRAME_CHECK[check]
            value = frame.at[index, column] if column in frame.columns else value
        failures.append(
            CheckFailure(
                check=check,
                category=_CATEGORY_OF_CHECK.get(check, SCHEMA),
                column=column,
                index=index,
                value=value,
                timestamp=None if index is None or timestamps is None else timestamps[index],
            )
        )
    return failures


def _timestamps_by_position(frame: pd.DataFrame) -> list[pd.Timestamp] | None:
    if "timestamp" not in frame.columns or not isinstance(frame["timestamp"].dtype, pd.DatetimeTZDtype):
        return None
    return list(frame["timestamp"])


def _outside_day(frame: pd.DataFrame, day: date) -> list[CheckFailure]:
    if "timestamp" not in frame.columns or not isinstance(frame["timestamp"].dtype, pd.DatetimeTZDtype):
        return []  # a missing or naive timestamp column is already a schema failure
    start_ms, end_ms = day_bounds_ms(day)
    if frame["timestamp"].dtype == _UTC_MS:  # the common case, on the integers: nothing outside?
        stamps = frame["timestamp"].array.asi8
        known = stamps != np.iinfo(np.int64).min  # NaT compares False below, as in pandas
        if not (known & ((stamps < start_ms) | (stamps >= end_ms))).any():
            return []
    start = pd.Timestamp(start_ms, unit="ms", tz="UTC")
    end = pd.Timestamp(end_ms, unit="ms", tz="UTC")
    timestamps = frame["timestamp"]
    outside = ((timestamps < start) | (timestamps >= end)).to_numpy()
    return [
        CheckFailure(INSIDE_DAY, SCHEMA, "timestamp", int(i), timestamps.iat[i], timestamps.iat[i])
        for i in np.flatnonzero(outside)
    ]


def _jsonable(value: Any) -> Hashable | None:
    if value is None:
        return None
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.isoformat()
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else str(value)
    if isinstance(value, int | np.integer | bool | np.bool_ | str):
        return value.item() if isinstance(value, np.generic) else value
    return str(value)
