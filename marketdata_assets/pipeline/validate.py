"""Validate: raw days of one venue x symbol -> served 1m candles, quarantined rows, gaps and a verdict.

For each day the step reads the raw file once and validates it once
(:func:`~marketdata_assets.quality.clean_partition`: dedupe, sort, one Pandera validation). From that
single validation it writes

* the passing rows into the served 1m dataset (``candles/timeframe=1m/...``, one file per month);
* the failing rows, each with its reason, under ``quarantine/ohlcv_1m/...`` (never dropped silently);
* the day's gaps (no_trades / filler / outage / quarantined) under ``gaps/...``;
* the day's :class:`DayVerdict` beside the day (:mod:`marketdata_assets.storage.verdicts`): the outcome
  of the validated layer's five checks. The Dagster checks report it and the resampling step obeys it;
  neither validates the day again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from marketdata_assets.pipeline.outcome import DayOutcome
from marketdata_assets.quality.day_checks import (
    BLOCKING_CHECKS,
    DEFAULT_POLICY,
    CheckOutcome,
    CheckPolicy,
    verdict_checks,
)
from marketdata_assets.quality.tables import frame_table
from marketdata_assets.storage.root import StorageRoot

VERDICT_VERSION = 1


@dataclass(frozen=True)
class DayVerdict:
    """The validated layer's checks of one day, as the validate step found them."""

    day: date
    checks: dict[str, CheckOutcome]

    @property
    def blocking_failure(self) -> CheckOutcome | None:
        """The first failing blocking check (the reason the day is not resampled), or None."""
        for name in BLOCKING_CHECKS:
            outcome = self.checks.get(name)
            if outcome is not None and outcome.blocks:
                return outcome
        return None

    @property
    def usable(self) -> bool:
        return self.blocking_failure is None

    def to_json(self) -> dict[str, Any]:
        return {
            "version": VERDICT_VERSION,
            "day": self.day.isoformat(),
            "checks": {
                name: {
                    "passed": o.passed,
                    "severity": o.severity,
                    "description": o.description,
                    "metadata": o.metadata,
                }
                for name, o in self.checks.items()
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DayVerdict:
        if data.get("version") != VERDICT_VERSION:
            raise ValueError(f"verdict version {data.get('version')!r} is not {VERDICT_VERSION}")
        checks = {
            name: CheckOutcome(name, bool(o["passed"]), o["severity"], o["description"], dict(o["metadata"]))
            for name, o in data["checks"].items()
        }
        return cls(date.fromisoformat(data["day"]), checks)


@dataclass(frozen=True)
class ValidatedDay:
    """Everything the validate step derives from one raw day, in memory."""

    valid: pd.DataFrame
    quarantined: pd.DataFrame
    gaps: pd.DataFrame
    verdict: DayVerdict
    numbers: dict[str, dict[str, Any]]


class VenueActivity:
    """Which minutes of a day each symbol of a venue has raw candles in (read once, cached), so the gap
    accounting can tell an outage (the venue served nothing: every symbol silent) from one quiet symbol
    while the others trade."""

    def __init__(self, root: StorageRoot, venue: str, symbol_keys: Iterable[str]) -> None:
        self.root, self.venue, self.symbol_keys = root, venue, list(symbol_keys)
        self._frames: dict[tuple[str, date], pd.DataFrame | None] = {}

    def remember(self, symbol_key: str, day: date, raw: pd.DataFrame) -> None:
        self._frames[(symbol_key, day)] = raw[["timestamp"]]

    def _frame(self, symbol_key: str, day: date) -> pd.DataFrame | None:
        from marketdata_assets.storage.raw import read_raw_candles

        if (symbol_key, day) not in self._frames:
            try:
                self._frames[(symbol_key, day)] = read_raw_candles(self.root, self.venue, symbol_key, day)[
                    ["timestamp"]
                ]
            except FileNotFoundError:
                self._frames[(symbol_key, day)] = None
        return self._frames[(symbol_key, day)]

    def others_active(self, symbol_key: str, day: date) -> np.ndarray | None:
        """Minutes in which another symbol of the venue has a candle; None: none of them was fetched."""
        from marketdata_assets.quality.gaps import venue_presence

        frames = [self._frame(other, day) for other in self.symbol_keys if other != symbol_key]
        return venue_presence([f for f in frames if f is not None], day)


def validate_day(
    raw: pd.DataFrame,
    day: date,
    venue: str,
    symbol_key: str,
    policy: CheckPolicy = DEFAULT_POLICY,
    *,
    venue_active: np.ndarray | None = None,
) -> ValidatedDay:
    """One raw day -> valid rows, quarantined rows, gaps, verdict and numbers (pure; one validation).

    Raises :class:`~marketdata_assets.quality.FrameContractError` when the frame cannot be read as
    candles at all.
    """
    from marketdata_assets.quality import clean_partition, filler_mask, find_gaps

    cleaned = clean_partition(raw, day)
    valid = cleaned.valid
    gaps = find_gaps(
        valid,
        day,
        venue,
        symbol_key,
        outage_min_minutes=policy.outage_min_minutes,
        quarantined=cleaned.quarantined["timestamp"],
        venue_active=venue_active,
    )
    verdict = DayVerdict(day, verdict_checks(cleaned, gaps, day, policy))
    minutes = gaps.groupby("kind")["minutes"].sum() if len(gaps) else pd.Series(dtype="int64")
    gap_numbers = {
        "outage_minutes": int(minutes.get("outage", 0)),
        "no_trade_minutes": int(minutes.get("no_trades", 0)),
        "filler_minutes": int(minutes.get("filler", 0)),
        "quarantined_minutes": int(minutes.get("quarantined", 0)),
    }
    candles: dict[str, Any] = {
        "rows_fetched": len(raw),
        "rows_valid": len(valid),
        "quarantined_rows": len(cleaned.quarantined),
        "identical_duplicates": cleaned.identical_duplicates,
        "conflicting_duplicates": cleaned.conflicting_duplicates,
        "missing_minutes": 1440 - int(valid["timestamp"].nunique()),
        **gap_numbers,
        "filler_rows": int(filler_mask(valid).sum()) if len(valid) else 0,
        "first_timestamp": valid["timestamp"].iloc[0].isoformat() if len(valid) else "-",
        "last_timestamp": valid["timestamp"].iloc[-1].isoformat() if len(valid) else "-",
    }
    if len(cleaned.quarantined):
        candles["quarantine_reasons"] = cleaned.quarantined["reason"].value_counts().head(10).to_dict()
    if cleaned.conflicting_duplicates:
        candles["conflicts"] = frame_table(cleaned.dedupe.conflicts.head(policy.failure_rows))
    return ValidatedDay(
        valid=valid,
        quarantined=cleaned.quarantined,
        gaps=gaps,
        verdict=verdict,
        numbers={"1m": candles, "gaps": {"gaps": len(gaps), **gap_numbers}},
    )


def validate_days(
    root: StorageRoot,
    venue: str,
    symbol_key: str,
    days: Iterable[date],
    policy: CheckPolicy = DEFAULT_POLICY,
    *,
    activity: VenueActivity | None = None,
) -> list[DayOutcome]:
    """Validate and store each raw day of ``venue`` x ``symbol_key``; one outcome per day.

    ``activity`` (the venue's other symbols) corroborates outages; without it a gap's length decides.

    A day whose raw file is missing or cannot be read as candles fails (named in its outcome); the other
    days are still validated and written.
    """
    from marketdata_assets.storage.raw import series_lock

    # the raw days read and the served days written from them belong together: a concurrent run of the
    # same series must not write between the read and the write (see storage.raw.series_lock)
    with series_lock(root, venue, symbol_key):
        return _validate_days(root, venue, symbol_key, days, policy, activity)


def _validate_days(
    root: StorageRoot,
    venue: str,
    symbol_key: str,
    days: Iterable[date],
    policy: CheckPolicy,
    activity: VenueActivity | None,
) -> list[DayOutcome]:
    from marketdata_assets.quality.clean import FrameContractError
    from marketdata_assets.storage.raw import (
        clear_quarantine_candles,
        read_raw_candles,
        write_quarantine_candles,
    )
    from marketdata_assets.storage.served import write_gap_days, write_served_days
    from marketdata_assets.storage.verdicts import write_verdict

    outcomes: list[DayOutcome] = []
    valid_by_day: dict[date, pd.DataFrame] = {}
    gaps_by_day: dict[date, pd.DataFrame] = {}
    for day in days:
        outcome = DayOutcome(venue, symbol_key, day)
        outcomes.append(outcome)
        try:
            raw = read_raw_candles(root, venue, symbol_key, day)
            active = None
            if activity is not None:
                activity.remember(symbol_key, day, raw)
                active = activity.others_active(symbol_key, day)
            validated = validate_day(raw, day, venue, symbol_key, policy, venue_active=active)
        except FileNotFoundError as exc:
            outcome.fail(f"raw data missing, fetch the raw day first ({exc})")
            continue
        except FrameContractError as exc:
            outcome.fail(f"raw file cannot be validated: {exc}")
            continue
        if len(validated.quarantined):
            info = write_quarantine_candles(root, venue, symbol_key, day, validated.quarantined)
            outcome.written.append(info.path)
        else:
            clear_quarantine_candles(root, venue, symbol_key, day)
        valid_by_day[day] = validated.valid
        gaps_by_day[day] = validated.gaps
        outcome.numbers = validated.numbers
        outcome.verdict = validated.verdict
    if valid_by_day:
        written = write_served_days(root, "1m", venue, symbol_key, valid_by_day)
        write_gap_days(root, venue, symbol_key, gaps_by_day)
        paths = sorted({w.path for w in written})
        for outcome in outcomes:
            if outcome.ok:
                outcome.numbers["1m"]["path"] = ", ".join(paths)
                outcome.written.extend(paths)
                # the verdict goes last: it speaks for data already stored
                outcome.written.append(
                    write_verdict(root, venue, symbol_key, outcome.day, outcome.verdict.to_json())
                )
    return outcomes


def read_day_verdict(root: StorageRoot, venue: str, symbol_key: str, day: date) -> DayVerdict | None:
    """The stored verdict of one validated day, or None when the day was never validated (or validated
    by a version of the platform that stored no verdict)."""
    from marketdata_assets.storage.verdicts import read_verdict

    data = read_verdict(root, venue, symbol_key, day)
    if data is None:
        return None
    try:
        return DayVerdict.from_json(data)
    except (KeyError, TypeError, ValueError):
        return None


def health(root: StorageRoot, venue: str, symbol_key: str, days: Iterable[date]) -> dict[str, Any]:
    """What the stored verdicts say about ``days`` of one series: how many were validated, how many are
    held back (a blocking check fails) and how many carry warnings (completeness, continuity), naming
    the days held back."""
    validated = held_back = warnings = 0
    held: list[str] = []
    for day in days:
        verdict = read_day_verdict(root, venue, symbol_key, day)
        if verdict is None:
            continue
        validated += 1
        if not verdict.usable:
            held_back += 1
            held.append(day.isoformat())
        warnings += sum(1 for o in verdict.checks.values() if not o.passed and not o.blocks)
    return {
        "exchange": venue,
        "symbol": symbol_key,
        "days_validated": validated,
        "days_held_back": held_back,
        "check_warnings": warnings,
        "held_back_days": ", ".join(held[:10]) or "-",
    }
