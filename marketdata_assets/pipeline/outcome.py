"""What a pipeline step reports for one (instrument, UTC day): its numbers, its verdict, what it wrote.

Every step (:mod:`.validate`, :mod:`.resample`, :mod:`.dvol`) returns one :class:`DayOutcome` per day it
was asked for, in the order asked. A day that fails does not raise: its outcome says why, and the other
days of the range are still done (the caller decides what a failed day means for its run).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any


@dataclass
class DayOutcome:
    """One day of one instrument after one step.

    ``numbers`` holds plain values per output of the step (``"1m"`` and ``"gaps"`` for validate, one per
    timeframe for resample and DVOL), the way the Dagster layer shows them per partition.
    """

    venue: str
    instrument: str  # symbol key (BTCUSDT) or DVOL currency (BTC)
    day: date
    error: str | None = None
    numbers: dict[str, dict[str, Any]] = field(default_factory=dict)
    written: list[str] = field(default_factory=list)
    verdict: Any = None  # pipeline.validate.DayVerdict for the validate step

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def label(self) -> str:
        return f"{self.day.isoformat()} {self.instrument}"

    def fail(self, error: str) -> DayOutcome:
        self.error = error
        return self
