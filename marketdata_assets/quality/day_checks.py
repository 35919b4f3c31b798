"""The asset checks of one UTC day of candles, as plain data: what passed, how bad, and the failing rows.

The Dagster checks (:mod:`marketdata_assets.defs.checks`) only turn these outcomes into check results,
and the resampling step calls :func:`validated_day_usable` - the same rules as the blocking checks - so a
day that fails them is never resampled, whether the run covers one partition or a range.

Checks and what failing means:

==============  ===================================================  ==================================
check           raw day (as fetched)                                 validated day (as stored)
==============  ===================================================  ==================================
schema          dtypes, minute alignment, prices > 0, finite, inside  same rules on the stored rows, plus
                the day. Rows that break them are quarantined by the  "no more than ``max_quarantined_
                validated step: WARN. A frame that cannot be read as  rows`` rows were quarantined".
                candles at all (missing column, wrong dtype): ERROR.  ERROR (blocking).
duplicates      a timestamp served twice: identical copies are        stored timestamps must be unique
                normal at page edges (passed); conflicting values     and increasing: ERROR
                fail (WARN; the last fetched value wins).             (blocking).
ohlc            high >= max(open, close), low <= min(open, close):    same rule on stored rows: ERROR
                WARN (those rows get quarantined).                    (blocking).
completeness    1440 minutes expected; missing minutes as ranges:     same, with the gap kinds: WARN.
                WARN.
continuity      consecutive closes jumping more than the threshold:   same: WARN.
                WARN, with the timestamps.
==============  ===================================================  ==================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandas as pd

from marketdata_assets.frames import MINUTES_PER_DAY
from marketdata_assets.quality.clean import CleanResult
from marketdata_assets.quality.continuity import DEFAULT_JUMP_THRESHOLD, price_jumps
from marketdata_assets.quality.dedupe import dedupe_candles
from marketdata_assets.quality.gaps import DEFAULT_OUTAGE_MIN_MINUTES, find_gaps, missing_minute_ranges
from marketdata_assets.quality.schemas import (
    DUPLICATES,
    OHLC,
    SCHEMA,
    RawCandles,
    RawDvol,
    ValidatedCandles,
    ValidationReport,
    validate_candles,
)
from marketdata_assets.quality.tables import frame_table, table

ERROR = "error"
WARN = "warn"
CHECK_NAMES = ("schema", "duplicates", "ohlc", "completeness", "continuity")
BLOCKING_CHECKS = ("schema", "duplicates", "ohlc")
# What Dagster shows per partition: two checks per layer, each reporting its rules. Every check
# evaluation is an event-log write per partition, the bulk of a backfill's cost (docs/BENCHMARKS.md),
# so the five rules travel as two checks: ``valid`` (the rows: schema, duplicates, ohlc; blocking on the
# validated layer) and ``complete`` (the day: completeness, continuity; never blocking).
CHECK_GROUPS: dict[str, tuple[str, ...]] = {
    "valid": BLOCKING_CHECKS,
    "complete": ("completeness", "continuity"),
}


@dataclass(frozen=True)
class CheckPolicy:
    """Thresholds of the checks (from the ``quality:`` settings)."""

    outage_min_minutes: int = DEFAULT_OUTAGE_MIN_MINUTES
    price_jump_threshold: float = DEFAULT_JUMP_THRESHOLD
    max_quarantined_rows: int = 0
    failure_rows: int = 20
    max_no_trade_share: float = 0.5


DEFAULT_POLICY = CheckPolicy()


@dataclass(frozen=True)
class CheckOutcome:
    """One check on one day. ``metadata`` holds plain values; tables as quality.tables.table data."""

    name: str
    passed: bool
    severity: str
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def blocks(self) -> bool:
        """True when this outcome must keep the day out of everything downstream."""
        return not self.passed and self.severity == ERROR


def raw_day_checks(
    raw: pd.DataFrame, day: date, policy: CheckPolicy = CheckPolicy()
) -> dict[str, CheckOutcome]:
    """The five checks of a raw (as fetched) day, keyed by check name."""
    report = validate_candles(raw, day, model=RawCandles)
    if report.frame_failures:
        broken = _frame_broken(report, policy)
        return {name: broken if name == "schema" else _not_run(name, broken) for name in CHECK_NAMES}
    deduped = dedupe_candles(raw)
    frame = deduped.frame
    return {
        "schema": _rows_outcome(
            "schema",
            report.in_category(SCHEMA),
            policy,
            severity=WARN,
            consequence="the validated step quarantines them",
        ),
        "duplicates": _raw_duplicates(deduped.identical_duplicates, deduped.conflicts, policy),
        "ohlc": _rows_outcome(
            "ohlc",
            report.in_category(OHLC),
            policy,
            severity=WARN,
            consequence="the validated step quarantines them",
        ),
        "completeness": _completeness(frame, day, policy, gaps=None),
        "continuity": _continuity(frame, policy),
    }


def validated_day_checks(
    valid: pd.DataFrame,
    day: date,
    *,
    venue: str,
    symbol: str,
    quarantined_rows: int,
    policy: CheckPolicy = CheckPolicy(),
) -> dict[str, CheckOutcome]:
    """The five checks of a stored validated day."""
    outcomes = _validated_blocking(valid, day, quarantined_rows, policy)
    if "completeness" in outcomes:  # the frame could not be read as candles
        return outcomes
    gaps = find_gaps(valid, day, venue, symbol, outage_min_minutes=policy.outage_min_minutes)
    outcomes["completeness"] = _completeness(valid, day, policy, gaps=gaps)
    outcomes["continuity"] = _continuity(valid, policy)
    return outcomes


def _validated_blocking(
    valid: pd.DataFrame, day: date, quarantined_rows: int, policy: CheckPolicy
) -> dict[str, CheckOutcome]:
    """schema / duplicates / ohlc of a stored validated day (every check when the frame is broken)."""
    report = validate_candles(valid, day, model=ValidatedCandles)
    if report.frame_failures:
        broken = _frame_broken(report, policy)
        return {name: broken if name == "schema" else _not_run(name, broken) for name in CHECK_NAMES}
    schema = _rows_outcome(
        "schema", report.in_category(SCHEMA), policy, severity=ERROR, consequence="stored rows are wrong"
    )
    if schema.passed and quarantined_rows > policy.max_quarantined_rows:
        schema = CheckOutcome(
            "schema",
            passed=False,
            severity=ERROR,
            description=(
                f"{quarantined_rows} rows of this day failed validation and were quarantined "
                f"(limit {policy.max_quarantined_rows}): the day is not resampled until it is fetched "
                "again or the limit (quality.max_quarantined_rows) is raised"
            ),
            metadata={
                "quarantined_rows": quarantined_rows,
                "max_quarantined_rows": policy.max_quarantined_rows,
            },
        )
    else:
        schema.metadata["quarantined_rows"] = quarantined_rows
    return {
        "schema": schema,
        "duplicates": _rows_outcome(
            "duplicates",
            report.in_category(DUPLICATES),
            policy,
            severity=ERROR,
            consequence="stored timestamps are not unique and increasing",
        ),
        "ohlc": _rows_outcome(
            "ohlc", report.in_category(OHLC), policy, severity=ERROR, consequence="stored rows are wrong"
        ),
    }


def verdict_checks(
    clean: CleanResult, gaps: pd.DataFrame, day: date, policy: CheckPolicy = CheckPolicy()
) -> dict[str, CheckOutcome]:
    """The five checks of a validated day, from the validate step's one validation of it.

    ``clean.valid`` holds exactly the rows that passed :class:`ValidatedCandles` on the deduplicated,
    sorted day, so the stored rows pass schema, duplicates and ohlc by construction; what can still fail
    is the day as a whole (more quarantined rows than the policy allows) and, as a guard against a bug,
    timestamps that are not strictly increasing. No second Pandera run.
    """
    valid = clean.valid
    quarantined = len(clean.quarantined)
    by_category = {name: len(clean.report.in_category(name).failing_rows) for name in (SCHEMA, OHLC)}
    rows = {"rows_checked": len(valid), "failing_rows": 0, "quarantined_rows": quarantined}
    if quarantined > policy.max_quarantined_rows:
        schema = CheckOutcome(
            "schema",
            passed=False,
            severity=ERROR,
            description=(
                f"{quarantined} rows of this day failed validation and were quarantined "
                f"(limit {policy.max_quarantined_rows}): the day is not resampled until it is fetched "
                "again or the limit (quality.max_quarantined_rows) is raised"
            ),
            metadata={
                "quarantined_rows": quarantined,
                "max_quarantined_rows": policy.max_quarantined_rows,
                "quarantined_by_rule": clean.report.counts(),
            },
        )
    else:
        schema = CheckOutcome(
            "schema",
            True,
            ERROR,
            f"all {len(valid)} stored rows pass",
            {**rows, "schema_rows_quarantined": by_category[SCHEMA]},
        )
    timestamps = valid["timestamp"]
    if timestamps.is_monotonic_increasing and timestamps.is_unique:
        duplicates = CheckOutcome("duplicates", True, ERROR, f"all {len(valid)} stored rows pass", dict(rows))
    else:  # cannot happen after dedupe + sort; a bug upstream if it does
        duplicates = CheckOutcome(
            "duplicates",
            False,
            ERROR,
            "stored timestamps are not unique and increasing",
            {**rows, "failing_rows": int((~(timestamps.diff() > pd.Timedelta(0))).sum()) - 1},
        )
    ohlc = CheckOutcome(
        "ohlc",
        True,
        ERROR,
        f"all {len(valid)} stored rows pass",
        {**rows, "ohlc_rows_quarantined": by_category[OHLC]},
    )
    return {
        "schema": schema,
        "duplicates": duplicates,
        "ohlc": ohlc,
        "completeness": _completeness(valid, day, policy, gaps=gaps),
        "continuity": _continuity(valid, policy),
    }


def dvol_day_checks(
    raw: pd.DataFrame, day: date, policy: CheckPolicy = CheckPolicy()
) -> dict[str, CheckOutcome]:
    """schema / duplicates / ohlc of a raw DVOL day (rows that fail are left out of the served DVOL)."""
    frame = raw[[c for c in raw.columns if c != "resolution_s"]]
    report = validate_candles(frame, day, model=RawDvol)
    if report.frame_failures:
        broken = _frame_broken(report, policy)
        return {name: broken if name == "schema" else _not_run(name, broken) for name in BLOCKING_CHECKS}
    deduped = dedupe_candles(frame)
    consequence = "left out of the served DVOL"
    return {
        "schema": _rows_outcome(
            "schema", report.in_category(SCHEMA), policy, severity=WARN, consequence=consequence
        ),
        "duplicates": _raw_duplicates(deduped.identical_duplicates, deduped.conflicts, policy),
        "ohlc": _rows_outcome(
            "ohlc", report.in_category(OHLC), policy, severity=WARN, consequence=consequence
        ),
    }


def group_outcomes(
    outcomes: dict[str, CheckOutcome], groups: dict[str, tuple[str, ...]] = CHECK_GROUPS
) -> dict[str, CheckOutcome]:
    """The rule outcomes of a day as the grouped checks (:data:`CHECK_GROUPS`); groups whose rules were not
    evaluated (DVOL has no ``complete``) are left out.

    A group passes when all its rules pass; it fails with ERROR when a failing rule is ERROR, else WARN. Its
    description names every rule (failing ones first); its metadata holds ``rules`` (rule -> "pass" or
    "fail (error|warn)") and each rule's numbers under the rule's name (``ohlc_failures``,
    ``completeness_missing_minutes``), so a key means the same thing on every partition.
    """
    grouped = {}
    for group, names in groups.items():
        members = [outcomes[name] for name in names if name in outcomes]
        if not members:
            continue
        failing = [m for m in members if not m.passed]
        if any(m.severity == ERROR for m in failing):
            severity = ERROR
        elif failing:
            severity = WARN
        else:
            severity = ERROR if any(m.severity == ERROR for m in members) else WARN
        ordered = failing + [m for m in members if m.passed]
        description = "; ".join(
            f"{m.name}: {'FAILS: ' if not m.passed else ''}{m.description}" for m in ordered
        )
        metadata: dict[str, Any] = {
            "rules": {m.name: "pass" if m.passed else f"fail ({m.severity})" for m in members}
        }
        for m in members:
            for key, value in m.metadata.items():
                metadata[key if key.startswith(f"{m.name}_") else f"{m.name}_{key}"] = value
        grouped[group] = CheckOutcome(group, not failing, severity, description, metadata)
    return grouped


def validated_day_usable(
    valid: pd.DataFrame, day: date, *, quarantined_rows: int, policy: CheckPolicy = CheckPolicy()
) -> CheckOutcome | None:
    """``None`` when the day passes every blocking check of the validated layer, else the first failing
    outcome (the reason the day is not resampled)."""
    outcomes = _validated_blocking(valid, day, quarantined_rows, policy)
    for name in BLOCKING_CHECKS:
        if outcomes[name].blocks:
            return outcomes[name]
    return None


def _failures(report: ValidationReport, policy: CheckPolicy) -> dict[str, list]:
    """The first failing rows of a report as a table (rule, category, column, row, timestamp, value)."""
    rows = report.failure_table(policy.failure_rows)
    return table(
        ["check", "category", "column", "row", "timestamp", "value"], [list(r.values()) for r in rows]
    )


def _frame_broken(report: ValidationReport, policy: CheckPolicy) -> CheckOutcome:
    reasons = ", ".join(f"{f.reason}: {f.value}" for f in report.frame_failures)
    return CheckOutcome(
        "schema",
        passed=False,
        severity=ERROR,
        description=f"the day cannot be read as candles ({reasons}); nothing downstream is computed",
        metadata={"failures": _failures(report, policy)},
    )


def _not_run(name: str, broken: CheckOutcome) -> CheckOutcome:
    return CheckOutcome(
        name,
        passed=False,
        severity=WARN,
        description=f"not evaluated: {broken.description}",
    )


def _rows_outcome(
    name: str, report: ValidationReport, policy: CheckPolicy, *, severity: str, consequence: str
) -> CheckOutcome:
    rows = len(report.failing_rows)
    metadata: dict[str, Any] = {"rows_checked": report.rows, "failing_rows": rows}
    if report.ok:
        return CheckOutcome(name, True, severity, f"all {report.rows} rows pass", metadata)
    metadata["failures_by_rule"] = report.counts()
    metadata["failures"] = _failures(report, policy)
    return CheckOutcome(name, False, severity, f"{rows} of {report.rows} rows fail ({consequence})", metadata)


def _raw_duplicates(identical: int, conflicts: pd.DataFrame, policy: CheckPolicy) -> CheckOutcome:
    conflicting = int(conflicts["timestamp"].nunique()) if len(conflicts) else 0
    metadata: dict[str, Any] = {"identical_duplicates": identical, "conflicting_timestamps": conflicting}
    if conflicting == 0:
        note = f"{identical} identical duplicate rows (page overlaps), collapsed" if identical else "none"
        return CheckOutcome("duplicates", True, WARN, note, metadata)
    metadata["conflicts"] = frame_table(conflicts.head(policy.failure_rows * 2))
    return CheckOutcome(
        "duplicates",
        False,
        WARN,
        f"{conflicting} timestamps served twice with different values; the last fetched value wins",
        metadata,
    )


def _completeness(
    frame: pd.DataFrame, day: date, policy: CheckPolicy, *, gaps: pd.DataFrame | None
) -> CheckOutcome:
    """Missing minutes judged by what they are: an outage (the venue served nothing for a long stretch)
    or quarantined rows fail; minutes without trades are normal for a quiet market and pass, unless
    they exceed ``policy.max_no_trade_share`` of the day."""
    ranges = missing_minute_ranges(frame, day)
    missing = sum(int((end - start) / pd.Timedelta(minutes=1)) for start, end in ranges)
    if gaps is None:
        gaps = find_gaps(frame, day, "", "", outage_min_minutes=policy.outage_min_minutes)
    by_kind = gaps.groupby("kind")["minutes"].sum() if len(gaps) else pd.Series(dtype="int64")
    minutes = {kind: int(by_kind.get(kind, 0)) for kind in ("outage", "quarantined", "no_trades", "filler")}
    metadata: dict[str, Any] = {
        "expected_minutes": MINUTES_PER_DAY,
        "present_minutes": MINUTES_PER_DAY - missing,
        "missing_minutes": missing,
        "missing_ranges_utc": _ranges_text(ranges, policy.failure_rows),
        "outage_minutes": minutes["outage"],
        "quarantined_minutes": minutes["quarantined"],
        "no_trade_minutes": minutes["no_trades"],
        "filler_minutes": minutes["filler"],
        "gap_minutes_by_kind": {kind: n for kind, n in minutes.items() if n},
    }
    no_trade_share = (minutes["no_trades"] + minutes["filler"]) / MINUTES_PER_DAY
    problems = []
    if minutes["outage"]:
        problems.append(f"{minutes['outage']} minutes of outage")
    if minutes["quarantined"]:
        problems.append(f"{minutes['quarantined']} minutes quarantined")
    if no_trade_share > policy.max_no_trade_share:
        problems.append(
            f"{no_trade_share:.0%} of the day without trades (limit {policy.max_no_trade_share:.0%})"
        )
    if problems:
        return CheckOutcome("completeness", False, WARN, "; ".join(problems), metadata)
    if missing == 0 and not minutes["filler"]:
        return CheckOutcome("completeness", True, WARN, "all 1440 minutes present", metadata)
    return CheckOutcome(
        "completeness",
        True,
        WARN,
        f"no outage: {minutes['no_trades']} minutes omitted and {minutes['filler']} filler minutes "
        f"without trades, {MINUTES_PER_DAY - missing} of {MINUTES_PER_DAY} minutes present",
        metadata,
    )


def _continuity(frame: pd.DataFrame, policy: CheckPolicy) -> CheckOutcome:
    jumps = price_jumps(frame, policy.price_jump_threshold) if len(frame) else pd.DataFrame()
    metadata: dict[str, Any] = {"threshold": policy.price_jump_threshold, "jumps": len(jumps)}
    if not len(jumps):
        return CheckOutcome(
            "continuity",
            True,
            WARN,
            f"no close-to-close move above {policy.price_jump_threshold:.1%}",
            metadata,
        )
    metadata["jump_rows"] = frame_table(jumps.head(policy.failure_rows))
    return CheckOutcome(
        "continuity",
        False,
        WARN,
        f"{len(jumps)} close-to-close moves above {policy.price_jump_threshold:.1%}",
        metadata,
    )


def _ranges_text(ranges: list[tuple[pd.Timestamp, pd.Timestamp]], limit: int) -> str:
    if not ranges:
        return "none"
    parts = [
        f"{start:%H:%M}-{end:%H:%M}" if end.date() == start.date() else f"{start:%H:%M}-24:00"
        for start, end in ranges[:limit]
    ]
    more = f" (+{len(ranges) - limit} more)" if len(ranges) > limit else ""
    return ", ".join(parts) + more
