"""Rolling in-memory buffers of closed candles per timeframe, updated minute by minute, pure.

One :class:`SeriesBuffer` per exchange x symbol keeps the last ``length`` closed candles of 1m, 5m, 15m,
1h, 4h and 1d. It advances a *settled* horizon ``through_ms``: every minute before it has been asked
of the venue (and validated) or taken from the served layer. When new minutes settle:

* each new 1m row is a closed 1m candle (``n_minutes = expected_minutes = 1``, as the served 1m);
* each higher-timeframe bin whose end the horizon passed is computed from the buffer's own 1m minutes
  of that bin with :func:`~marketdata_assets.transform.resample.resample_candles` -- the very function
  the batch pipeline uses, so a live bin equals the served bin value for value (filler rule included);
* a minute the venue answered without is recorded as a :class:`Gap` (``missing``; ``quarantined``
  for rows that failed validation; ``unavailable`` for minutes neither served nor within the REST
  history), never a silent hole.

A still-open candle never enters a buffer: the horizon only moves to the close of the last closed
minute. A candle's ``seq`` is its bin index since the Unix epoch (``open_ms // bin_ms``): strictly
increasing in a series, identical across restarts, and a jump marks bins without any candle.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from marketdata_assets.frames import CANDLE_COLUMNS, DAY_MS, MINUTE_MS, TIMESTAMP_DTYPE
from marketdata_assets.transform.resample import RESAMPLED_COLUMNS, TIMEFRAMES, resample_candles

TIMEFRAME_MINUTES: dict[str, int] = {"1m": 1, **TIMEFRAMES}
"""Every timeframe a buffer keeps -> bin length in minutes (1m first, ascending)."""
LIVE_TIMEFRAMES: tuple[str, ...] = tuple(TIMEFRAME_MINUTES)
MAX_GAPS = 1000


def bin_ms(timeframe: str) -> int:
    if timeframe not in TIMEFRAME_MINUTES:
        raise ValueError(f"unknown timeframe {timeframe!r}; expected one of {', '.join(LIVE_TIMEFRAMES)}")
    return TIMEFRAME_MINUTES[timeframe] * MINUTE_MS


def seq_of(timeframe: str, open_ms: int) -> int:
    """The sequence number of the candle opening at ``open_ms``: its bin index since the epoch."""
    return open_ms // bin_ms(timeframe)


@dataclass(frozen=True)
class Gap:
    """Minutes ``[start_ms, end_ms)`` of a series the buffer holds no candle for, and why."""

    start_ms: int
    end_ms: int
    kind: str  # missing | quarantined | unavailable

    @property
    def minutes(self) -> int:
        return (self.end_ms - self.start_ms) // MINUTE_MS

    def as_json(self) -> dict[str, Any]:
        return {
            "start": _iso(self.start_ms),
            "end": _iso(self.end_ms),
            "minutes": self.minutes,
            "kind": self.kind,
        }


@dataclass(frozen=True)
class Candle:
    """One closed candle of one timeframe (open time in epoch ms)."""

    timeframe: str
    timestamp: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    n_minutes: int
    expected_minutes: int
    complete: bool

    @property
    def seq(self) -> int:
        return seq_of(self.timeframe, self.timestamp)

    @property
    def close_time(self) -> int:
        return self.timestamp + bin_ms(self.timeframe)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("timeframe")
        data["timestamp"] = _iso(self.timestamp)
        return data


def candles_of(frame: pd.DataFrame, timeframe: str) -> list[Candle]:
    """Candles from a frame with ``timestamp`` + OHLCV (+ n_minutes, expected_minutes, complete)."""
    if frame.empty:
        return []
    ms = frame["timestamp"].to_numpy(dtype="datetime64[ms]").view("int64")
    one = timeframe == "1m"
    n = frame["n_minutes"].to_numpy() if "n_minutes" in frame else np.ones(len(frame), dtype="int64")
    expected = (
        frame["expected_minutes"].to_numpy()
        if "expected_minutes" in frame
        else np.full(len(frame), TIMEFRAME_MINUTES[timeframe], dtype="int64")
    )
    complete = frame["complete"].to_numpy() if "complete" in frame else np.ones(len(frame), dtype=bool)
    columns = [frame[c].to_numpy(dtype="float64") for c in ("open", "high", "low", "close", "volume")]
    return [
        Candle(
            timeframe,
            int(ms[i]),
            float(columns[0][i]),
            float(columns[1][i]),
            float(columns[2][i]),
            float(columns[3][i]),
            float(columns[4][i]),
            1 if one else int(n[i]),
            1 if one else int(expected[i]),
            True if one else bool(complete[i]),
        )
        for i in range(len(frame))
    ]


def candles_frame(candles: Iterable[Candle]) -> pd.DataFrame:
    """The served shape: ``RESAMPLED_COLUMNS`` with a ``datetime64[ms, UTC]`` timestamp."""
    rows = [
        (
            c.timestamp,
            c.open,
            c.high,
            c.low,
            c.close,
            c.volume,
            c.n_minutes,
            c.expected_minutes,
            c.complete,
        )
        for c in candles
    ]
    frame = pd.DataFrame(rows, columns=RESAMPLED_COLUMNS)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"].astype("int64"), unit="ms", utc=True).astype(
        TIMESTAMP_DTYPE
    )
    return frame.astype(
        {
            **{c: "float64" for c in ("open", "high", "low", "close", "volume")},
            "n_minutes": "int64",
            "expected_minutes": "int64",
            "complete": "bool",
        }
    )


class SeriesBuffer:
    """The closed candles of one exchange x symbol, every timeframe, last ``length`` of each."""

    def __init__(self, exchange: str, symbol_key: str, length: int = 100) -> None:
        if length < 1:
            raise ValueError("buffer length must be >= 1")
        self.exchange = exchange
        self.symbol_key = symbol_key
        self.length = length
        self.candles: dict[str, deque[Candle]] = {tf: deque(maxlen=length) for tf in LIVE_TIMEFRAMES}
        self.gaps: deque[Gap] = deque(maxlen=MAX_GAPS)
        self.through_ms: int | None = None
        self._minutes = _empty_minutes()  # the 1m rows of the still-open bins (since the open 1d bin)
        self.served_through_ms: int | None = None

    # -- filling --------------------------------------------------------------------------------

    def seed(self, served: dict[str, pd.DataFrame], served_through_ms: int) -> None:
        """Start from the served layer: the last ``length`` candles of each timeframe, every minute
        before ``served_through_ms`` (a UTC day boundary) settled."""
        if served_through_ms % DAY_MS:
            raise ValueError("the served horizon must be a UTC day boundary")
        for timeframe, frame in served.items():
            rows = frame[frame["timestamp"] < pd.Timestamp(served_through_ms, unit="ms", tz="UTC")]
            self.candles[timeframe].extend(candles_of(rows.tail(self.length), timeframe))
        self.through_ms = served_through_ms
        self.served_through_ms = served_through_ms

    def add_minutes(
        self,
        minutes: pd.DataFrame,
        start_ms: int,
        end_ms: int,
        quarantined: Sequence[int] = (),
    ) -> list[Candle]:
        """Settle ``[start_ms, end_ms)``: ``minutes`` are its validated, unique 1m rows; ``quarantined``
        the open times of rows that failed validation. Returns the candles this closed, in order
        (close time, then timeframe)."""
        if start_ms % MINUTE_MS or end_ms % MINUTE_MS or end_ms < start_ms:
            raise ValueError(f"bad range [{start_ms}, {end_ms})")
        if self.through_ms is None:
            self.through_ms = start_ms
        if start_ms < self.through_ms:
            raise ValueError(f"minutes before {_iso(self.through_ms)} are already settled")
        if start_ms > self.through_ms:
            self._add_gaps(range(self.through_ms, start_ms, MINUTE_MS), "unavailable")
        old = self.through_ms
        frame = minutes[CANDLE_COLUMNS]
        ms = frame["timestamp"].to_numpy(dtype="datetime64[ms]").view("int64")
        inside = (ms >= start_ms) & (ms < end_ms)
        if not inside.all():
            raise ValueError("minutes outside the range to settle")
        if len(ms) > 1 and not bool(np.all(ms[1:] > ms[:-1])):
            raise ValueError("minutes must be unique and increasing")
        have = set(ms.tolist())
        bad = {int(t) for t in quarantined}
        absent = [t for t in range(start_ms, end_ms, MINUTE_MS) if t not in have]
        self._add_gaps([t for t in absent if t not in bad], "missing")
        self._add_gaps([t for t in absent if t in bad], "quarantined")

        if len(frame):
            self._minutes = (
                pd.concat([self._minutes, frame], ignore_index=True) if len(self._minutes) else frame
            )
        closed: list[Candle] = list(candles_of(frame, "1m"))
        for timeframe in LIVE_TIMEFRAMES[1:]:
            size = bin_ms(timeframe)
            first_end = (old // size + 1) * size  # the first bin end after the old horizon
            all_ms = self._minute_ms()
            for bin_end in range(first_end, end_ms + 1, size):
                lo, hi = np.searchsorted(all_ms, [bin_end - size, bin_end])
                if hi > lo:
                    part = self._minutes.iloc[lo:hi]
                    closed.extend(candles_of(resample_candles(part, timeframe), timeframe))
        closed.sort(key=lambda c: (c.close_time, TIMEFRAME_MINUTES[c.timeframe]))
        for candle in closed:
            self.candles[candle.timeframe].append(candle)
        self.through_ms = end_ms
        keep_from = end_ms // DAY_MS * DAY_MS
        all_ms = self._minute_ms()
        cut = int(np.searchsorted(all_ms, keep_from))
        if cut:
            self._minutes = self._minutes.iloc[cut:].reset_index(drop=True)
        return closed

    def _minute_ms(self) -> np.ndarray:
        return self._minutes["timestamp"].to_numpy(dtype="datetime64[ms]").view("int64")

    def _add_gaps(self, minutes: Iterable[int], kind: str) -> None:
        run_start = prev = None
        for t in minutes:
            if run_start is not None and t == prev + MINUTE_MS:
                prev = t
                continue
            if run_start is not None:
                self._push_gap(Gap(run_start, prev + MINUTE_MS, kind))
            run_start = prev = t
        if run_start is not None:
            self._push_gap(Gap(run_start, prev + MINUTE_MS, kind))

    def _push_gap(self, gap: Gap) -> None:
        last = self.gaps[-1] if self.gaps else None
        if last is not None and last.kind == gap.kind and last.end_ms == gap.start_ms:
            self.gaps[-1] = Gap(last.start_ms, gap.end_ms, gap.kind)
        else:
            self.gaps.append(gap)

    # -- reading --------------------------------------------------------------------------------

    def frame(self, timeframe: str) -> pd.DataFrame:
        bin_ms(timeframe)
        return candles_frame(self.candles[timeframe])

    def last_closed(self, timeframe: str = "1m") -> Candle | None:
        candles = self.candles[timeframe]
        return candles[-1] if candles else None

    def since(self, timeframe: str, seq: int) -> list[Candle]:
        """The buffered candles of ``timeframe`` with a sequence number above ``seq``."""
        return [c for c in self.candles[timeframe] if c.seq > seq]

    def gaps_in(self, start_ms: int | None = None, end_ms: int | None = None) -> list[Gap]:
        return [
            g
            for g in self.gaps
            if (start_ms is None or g.end_ms > start_ms) and (end_ms is None or g.start_ms < end_ms)
        ]


def _empty_minutes() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype="float64") for c in CANDLE_COLUMNS})
    return frame.astype({"timestamp": TIMESTAMP_DTYPE})


def _iso(ms: int) -> str:
    return pd.Timestamp(ms, unit="ms", tz="UTC").isoformat()
