"""DVOL: raw Deribit DVOL days of one currency -> served 1-minute and 1-hour DVOL.

Per day: duplicates collapse (the last fetched wins), rows failing the
:class:`~marketdata_assets.quality.DvolCandles` schema are left out (counted, the failing rows shown), then
the minutes (forward-filled inside the range DVOL covers that day, marked ``filled``) and the hourly
candles (from observed points only) are written to ``dvol/timeframe=1m|1h/currency=/month=``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date

import pandas as pd

from marketdata_assets.pipeline.outcome import DayOutcome
from marketdata_assets.quality.day_checks import DEFAULT_POLICY, CheckPolicy
from marketdata_assets.storage.root import StorageRoot
from marketdata_assets.universe import DVOL_VENUE


def serve_dvol_days(
    root: StorageRoot, currency: str, days: Iterable[date], policy: CheckPolicy = DEFAULT_POLICY
) -> list[DayOutcome]:
    """Serve each raw DVOL day of ``currency``; one outcome per day (numbers per timeframe)."""
    from marketdata_assets.quality import DvolCandles, dedupe_candles, validate_candles
    from marketdata_assets.quality.tables import frame_table
    from marketdata_assets.storage.raw import read_raw_dvol
    from marketdata_assets.storage.served import write_served_dvol_days
    from marketdata_assets.transform.dvol import dvol_hourly, dvol_to_minutes

    outcomes: list[DayOutcome] = []
    out: dict[str, dict[date, pd.DataFrame]] = defaultdict(dict)
    for day in days:
        outcome = DayOutcome(DVOL_VENUE, currency, day)
        outcomes.append(outcome)
        try:
            raw = read_raw_dvol(root, currency, day)
        except FileNotFoundError as exc:
            outcome.fail(f"raw DVOL missing, fetch the raw day first ({exc})")
            continue
        resolution = raw["resolution_s"].dropna()
        points = dedupe_candles(raw.drop(columns=["resolution_s"])).frame
        report = validate_candles(points, day, model=DvolCandles)
        if report.frame_failures:
            outcome.fail(f"raw DVOL cannot be validated: {report.failure_markdown(3)}")
            continue
        bad = sorted(report.failing_rows)
        valid = points.drop(index=bad).reset_index(drop=True)
        if len(valid) == 0:
            minutes = dvol_to_minutes(valid, resolution_s=60)
        else:
            # a day with a single point has no spacing to infer from; Deribit's hourly series is the
            # only one that thin
            resolution_s = int(resolution.iloc[0]) if len(resolution) else 3600
            minutes = dvol_to_minutes(valid, resolution_s=resolution_s)
        hourly = dvol_hourly(minutes)
        out["1m"][day] = minutes
        out["1h"][day] = hourly
        common: dict = {"points": len(points), "dropped_rows": len(bad)}
        if bad:
            common["dropped"] = frame_table(points.iloc[bad].head(policy.failure_rows))
        outcome.numbers["1m"] = {
            **common,
            "rows": len(minutes),
            "filled_rows": int(minutes["filled"].sum()) if len(minutes) else 0,
        }
        outcome.numbers["1h"] = {**common, "rows": len(hourly), "filled_rows": 0}
    for timeframe, frames_by_day in out.items():
        written = write_served_dvol_days(root, timeframe, currency, frames_by_day)
        paths = sorted({w.path for w in written})
        for outcome in outcomes:
            if outcome.ok:
                outcome.written.extend(paths)
    return outcomes
