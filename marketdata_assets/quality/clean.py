"""Turn one raw partition into the rows worth storing and the rows that are not, with the reasons.

``clean_partition`` = dedupe (last fetch wins) -> sort -> validate for the day -> split. Every row that
breaks a rule goes to ``quarantined`` with a ``reason``; nothing is dropped silently (the rows collapsed
by dedupe are counted and, when they conflict, listed in ``dedupe.conflicts``). ``valid`` passes the
validated model (``ValidatedCandles`` by default) for that day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pandas as pd
import pandera.pandas as pa

from marketdata_assets.quality.dedupe import DedupeResult, dedupe_candles
from marketdata_assets.quality.schemas import ValidatedCandles, ValidationReport, validate_candles

REASON_COLUMN = "reason"
REASON_SEPARATOR = "; "


class FrameContractError(ValueError):
    """The frame as a whole breaks the contract (a missing column, a wrong dtype, a naive timestamp):
    no single row is to blame, so nothing can be quarantined row by row. A bug upstream, not bad data."""

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        reasons = ", ".join(f"{f.reason}: {f.value}" for f in report.frame_failures)
        super().__init__(f"frame does not match {report.model}: {reasons}")


@dataclass(frozen=True)
class CleanResult:
    """``valid``: sorted, unique, passing rows (``RangeIndex``). ``quarantined``: the failing rows as they
    were after dedupe, plus a ``reason`` column (``"<column>: <check>"`` entries joined by ``"; "``).
    ``report``: the validation of the deduplicated frame (row indices are positions in ``dedupe.frame``)."""

    valid: pd.DataFrame
    quarantined: pd.DataFrame
    dedupe: DedupeResult
    report: ValidationReport

    @property
    def identical_duplicates(self) -> int:
        return self.dedupe.identical_duplicates

    @property
    def conflicting_duplicates(self) -> int:
        return self.dedupe.conflicting_duplicates


def clean_partition(
    raw: pd.DataFrame,
    day: date,
    *,
    model: type[pa.DataFrameModel] = ValidatedCandles,
) -> CleanResult:
    """Dedupe, sort and validate one UTC day; split the rows into valid and quarantined.

    Raises :class:`FrameContractError` when the frame itself is malformed (missing column, wrong dtype).
    """
    deduped = dedupe_candles(raw)
    frame = deduped.frame
    report = validate_candles(frame, day, model=model)
    if report.frame_failures:
        raise FrameContractError(report)

    reasons = report.reasons_by_row()
    bad = sorted(reasons)
    quarantined = frame.iloc[bad].copy()
    quarantined[REASON_COLUMN] = pd.Series(
        [REASON_SEPARATOR.join(reasons[i]) for i in bad], index=quarantined.index, dtype="object"
    )
    valid = frame.drop(index=bad)
    return CleanResult(
        valid=valid.reset_index(drop=True),
        quarantined=quarantined.reset_index(drop=True),
        dedupe=deduped,
        report=report,
    )
