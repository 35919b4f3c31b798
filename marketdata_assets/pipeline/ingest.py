"""Raw ingestion, pure: fetch one partition (venue, symbol, UTC day), write it atomically, report.

The Dagster assets call :func:`ingest_candle_days` / :func:`ingest_dvol_days` once per run with every
partition of the run, so one client per venue serves the whole range and heavy imports are paid once.
A partition that fails is reported, not raised: the caller decides (the asset fails the run after
recording every partition that did succeed), so one bad day never hides the others' results.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol

import numpy as np
import pandas as pd

from marketdata_assets.frames import MINUTES_PER_DAY, day_bounds_ms, symbol_key


class DaySource(Protocol):
    """What ingestion needs from a venue: the closed candles (or DVOL points) of one UTC day."""

    def fetch_day(self, instrument: str, day: date) -> Any: ...


@dataclass
class PartitionOutcome:
    """What happened to one partition; rendered as materialization metadata."""

    venue: str
    instrument: str  # unified symbol (BTC/USDT) or DVOL currency (BTC)
    day: date
    ok: bool
    rows: int = 0
    first_timestamp: str | None = None
    last_timestamp: str | None = None
    missing_minutes: int = 0
    missing_ranges: list[str] = field(default_factory=list)
    duplicates: int = 0
    requests: int = 0
    retries: int = 0
    bytes: int = 0
    source_url: str = ""
    path: str = ""
    resolution_s: int | None = None
    elapsed_s: float = 0.0
    error: str | None = None
    # a re-fetch of a stored day: candles whose values changed (new values stored), candles new to
    # the day, the largest relative price change, and re-fetched candles rejected as invalid (the
    # stored candle kept; the rows quarantined under quarantine/ohlcv_1m_refetch)
    revised_candles: int = 0
    added_candles: int = 0
    rejected_candles: int = 0
    max_rel_price_revision: float = 0.0

    @property
    def key(self) -> str:
        return symbol_key(self.instrument)

    def as_row(self) -> dict[str, Any]:
        row = asdict(self)
        row["day"] = self.day.isoformat()
        row["missing_ranges"] = ", ".join(self.missing_ranges)
        return row


ProgressCallback = Callable[[PartitionOutcome], None]


def ensure_closed(day: date, now: datetime | None = None) -> None:
    """Refuse a UTC day that has not ended: a partition holds a whole closed day or nothing."""
    now = now or datetime.now(UTC)
    _, end_ms = day_bounds_ms(day)
    if end_ms > now.timestamp() * 1000:
        raise ValueError(
            f"{day.isoformat()} is not a closed UTC day yet (now is {now:%Y-%m-%d %H:%M} UTC); "
            "partitions hold whole closed days, the latest is yesterday"
        )


def minute_ranges(timestamps: pd.Series, day: date, limit: int = 20) -> tuple[int, list[str]]:
    """Missing minutes of a day given candle open times: (count, the first ``limit`` ranges as HH:MM-HH:MM)."""
    start_ms, _ = day_bounds_ms(day)
    offsets = (pd.to_datetime(timestamps, utc=True).dt.as_unit("ms").astype("int64") - start_ms) // 60_000
    present = np.zeros(MINUTES_PER_DAY, dtype=bool)
    offsets = offsets[(offsets >= 0) & (offsets < MINUTES_PER_DAY)].to_numpy(dtype=np.int64)
    present[offsets] = True
    missing = ~present
    # run boundaries: where missing flips on (+1) and off (-1)
    edges = np.diff(np.concatenate(([0], missing.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    ranges = [
        f"{s // 60:02d}:{s % 60:02d}-{e // 60:02d}:{e % 60:02d}"
        for s, e in zip(starts[:limit], ends[:limit], strict=True)
    ]
    return int(missing.sum()), ranges


def ingest_candle_days(
    source: DaySource,
    writer: Callable[[str, date, Any], Any],
    venue: str,
    items: Sequence[tuple[str, date]],
    *,
    progress: ProgressCallback | None = None,
    now: datetime | None = None,
) -> list[PartitionOutcome]:
    """Fetch and store each (unified symbol, day); ``writer(symbol_key, day, fetch_result)`` returns WriteInfo."""
    return _ingest(source, writer, venue, items, progress=progress, now=now, dvol=False)


def ingest_dvol_days(
    source: DaySource,
    writer: Callable[[str, date, Any], Any],
    items: Sequence[tuple[str, date]],
    *,
    progress: ProgressCallback | None = None,
    now: datetime | None = None,
) -> list[PartitionOutcome]:
    """Fetch and store each (currency, day) of Deribit DVOL."""
    return _ingest(source, writer, "deribit", items, progress=progress, now=now, dvol=True)


def _ingest(
    source: DaySource,
    writer: Callable[[str, date, Any], Any],
    venue: str,
    items: Iterable[tuple[str, date]],
    *,
    progress: ProgressCallback | None,
    now: datetime | None,
    dvol: bool,
) -> list[PartitionOutcome]:
    outcomes = []
    for instrument, day in items:
        started = time.monotonic()
        outcome = PartitionOutcome(venue=venue, instrument=instrument, day=day, ok=False)
        try:
            ensure_closed(day, now)
            result = source.fetch_day(instrument, day)
            _record_fetch(outcome, result, day, dvol=dvol)
            info = writer(symbol_key(instrument), day, result)
            outcome.bytes = int(info.bytes)
            outcome.path = str(info.path)
            revision = getattr(info, "revision", None)
            if revision is not None:
                outcome.revised_candles = revision.revised
                outcome.added_candles = revision.added
                outcome.rejected_candles = revision.rejected
                outcome.max_rel_price_revision = revision.max_rel_price_change
            outcome.ok = True
        except Exception as exc:  # noqa: BLE001 - every failure is reported per partition
            outcome.error = f"{type(exc).__name__}: {exc}"
        outcome.elapsed_s = round(time.monotonic() - started, 3)
        outcomes.append(outcome)
        if progress is not None:
            progress(outcome)
    return outcomes


def _record_fetch(outcome: PartitionOutcome, result: Any, day: date, *, dvol: bool) -> None:
    frame: pd.DataFrame = result.frame
    stats = result.stats
    outcome.rows = len(frame)
    if len(frame):
        outcome.first_timestamp = frame["timestamp"].min().isoformat()
        outcome.last_timestamp = frame["timestamp"].max().isoformat()
    outcome.requests = int(stats.requests)
    outcome.retries = int(stats.retries)
    outcome.duplicates = int(getattr(stats, "duplicate_rows", 0))
    outcome.source_url = str(getattr(stats, "source_url", "") or "")
    resolution = getattr(result, "resolution_s", None)
    outcome.resolution_s = int(resolution) if resolution else None
    if not dvol or outcome.resolution_s == 60:
        outcome.missing_minutes, outcome.missing_ranges = minute_ranges(frame["timestamp"], day)
