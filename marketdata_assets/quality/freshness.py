"""Freshness: is the newest served candle of a series as recent as it should be?

A series is fresh when its newest 1-minute candle opened no more than ``max_lag`` before ``now``. The
newest candle a closed day can hold opens at 23:59 UTC, so with the nightly refresh shortly after
midnight a lag of a little over a day is normal; the default allowance is 26 hours.

A series that was never served, or whose backfill is running right now, is not judged: it is listed
with the reason and does not make the check fail.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pandas as pd

DEFAULT_MAX_LAG = timedelta(hours=26)


@dataclass(frozen=True)
class Freshness:
    series: str
    latest: pd.Timestamp | None  # open time of the newest served candle; None: nothing served
    lag: timedelta | None
    fresh: bool
    judged: bool = True  # False: never served, or its backfill is running (``note`` says which)
    note: str = ""

    @property
    def stale(self) -> bool:
        return self.judged and not self.fresh

    def describe(self) -> str:
        if not self.judged:
            return f"{self.series}: {self.note}"
        if self.latest is None:
            return f"{self.series}: nothing served yet"
        hours = self.lag.total_seconds() / 3600 if self.lag is not None else float("nan")
        return f"{self.series}: newest candle {self.latest.isoformat()} ({hours:.1f} h old)"


def freshness(
    series: str,
    latest: pd.Timestamp | None,
    now: pd.Timestamp,
    max_lag: timedelta,
    *,
    backfilling: bool = False,
) -> Freshness:
    if latest is None or pd.isna(latest):
        return Freshness(series, None, None, False, judged=False, note="nothing served yet: not judged")
    lag = (now - latest).to_pytimedelta()
    if backfilling:
        return Freshness(
            series, latest, lag, lag <= max_lag, judged=False, note="backfill running: not judged"
        )
    return Freshness(series, latest, lag, lag <= max_lag)
