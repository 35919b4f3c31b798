"""Resample: validated 1m days of one venue x symbol -> served 5m, 15m, 1h, 4h and 1d.

The step reads the validated minutes of the whole range once, then per day obeys the verdict the
validate step stored (:func:`~marketdata_assets.pipeline.validate.read_day_verdict`): a day whose
verdict fails a blocking check is not resampled and its outcome says why, while the other days are
written, and any bins the held-back day still has from an earlier version are removed, so every
served bin is always the aggregation of the served minutes. Bins are left-closed, left-labelled UTC bins; a filler minute never sets open/high/low; a bin
with missing minutes is kept and marked ``complete = false`` (:mod:`marketdata_assets.transform.resample`).

A day validated by an older version of the platform has no stored verdict: it is checked once here with
the same blocking rules (:func:`~marketdata_assets.quality.day_checks.validated_day_usable`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, timedelta

import pandas as pd

from marketdata_assets.frames import CANDLE_COLUMNS
from marketdata_assets.pipeline.outcome import DayOutcome
from marketdata_assets.pipeline.validate import read_day_verdict
from marketdata_assets.quality.day_checks import DEFAULT_POLICY, CheckOutcome, CheckPolicy
from marketdata_assets.storage.root import StorageRoot


def resample_days(
    root: StorageRoot,
    venue: str,
    symbol_key: str,
    days: Sequence[date],
    policy: CheckPolicy = DEFAULT_POLICY,
) -> list[DayOutcome]:
    """Resample and store every timeframe of each day; one outcome per day (numbers per timeframe)."""
    from marketdata_assets.storage.raw import series_lock

    # the minutes read and the bins written from them belong together (see storage.raw.series_lock)
    with series_lock(root, venue, symbol_key):
        return _resample_days(root, venue, symbol_key, days, policy)


def _resample_days(
    root: StorageRoot, venue: str, symbol_key: str, days: Sequence[date], policy: CheckPolicy
) -> list[DayOutcome]:
    from marketdata_assets.storage.served import read_gaps, read_served_candles, write_served_days
    from marketdata_assets.transform.resample import TIMEFRAMES, resample_all

    if not days:
        return []
    start = pd.Timestamp(min(days), tz="UTC")
    end = pd.Timestamp(max(days) + timedelta(days=1), tz="UTC")
    minutes = read_served_candles(root, "1m", venue, symbol_key, start, end)
    minute_days = minutes["timestamp"].dt.date.to_numpy()
    gap_days: set[date] | None = None  # read only for days without a verdict

    outcomes: list[DayOutcome] = []
    out: dict[str, dict[date, pd.DataFrame]] = defaultdict(dict)
    for day in days:
        outcome = DayOutcome(venue, symbol_key, day)
        outcomes.append(outcome)
        day_frame = minutes.loc[minute_days == day].reset_index(drop=True)
        verdict = read_day_verdict(root, venue, symbol_key, day)
        if verdict is not None:
            blocked = verdict.blocking_failure
        else:
            if gap_days is None:
                gap_days = {
                    pd.Timestamp(d).date() for d in read_gaps(root, venue, symbol_key, start, end)["day"]
                }
            if not len(day_frame) and day not in gap_days:
                outcome.fail(f"no validated data for this day: validate {venue} {symbol_key} first")
                continue
            blocked = _legacy_check(root, venue, symbol_key, day, day_frame, policy)
        if blocked is not None:
            outcome.fail(f"not resampled: validated {blocked.name} check fails: {blocked.description}")
            # bins from an earlier, usable version of the day would no longer be the aggregation of the
            # served minutes: remove them (month files without other rows are not created)
            for timeframe in TIMEFRAMES:
                out[timeframe][day] = pd.DataFrame()
            continue
        for timeframe, frame in resample_all(day_frame[CANDLE_COLUMNS]).items():
            out[timeframe][day] = frame
            outcome.numbers[timeframe] = {
                "bins": len(frame),
                "incomplete_bins": int((~frame["complete"]).sum()) if len(frame) else 0,
            }
    for timeframe, frames_by_day in out.items():
        paths = sorted({w.path for w in write_served_days(root, timeframe, venue, symbol_key, frames_by_day)})
        for outcome in outcomes:
            if outcome.ok:
                outcome.written.extend(paths)
    return outcomes


def _legacy_check(
    root: StorageRoot, venue: str, symbol_key: str, day: date, day_frame: pd.DataFrame, policy: CheckPolicy
) -> CheckOutcome | None:
    from marketdata_assets.quality.day_checks import validated_day_usable
    from marketdata_assets.storage.raw import read_quarantine_candles

    try:
        quarantined = len(read_quarantine_candles(root, venue, symbol_key, day))
    except FileNotFoundError:
        quarantined = 0
    return validated_day_usable(day_frame[CANDLE_COLUMNS], day, quarantined_rows=quarantined, policy=policy)
