"""What the automation asks for: the nightly runs and the gap backfill plan, with per-day backoff (pure).

The Dagster layer (:mod:`marketdata_assets.defs.automation`) finds out what the instance and the
gap table say about each day and turns the plan into run requests; everything deciding *which*
partitions to request, in how many runs and how often lives here and is tested without Dagster.

Vocabulary: a *series* is one venue's assets over its instruments (candle symbols as partition keys,
``BTCUSDT``; DVOL currencies). A :class:`Day` is one partition of one series. A :class:`Batch` is one
run: a rectangle of days x instruments (instruments contiguous in the configured order, because a
multi-partition key range selects every key between its start and end in each dimension).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

from marketdata_assets.universe import DVOL_VENUE, latest_closed_day, partition_key, split_partition_key

CURSOR_VERSION = 1


class Reason(StrEnum):
    """Why the sensor wants a day (again)."""

    MISSING = "missing"  # some asset of the day was never materialised
    FAILED = "failed"  # the latest attempt of some asset of the day failed
    OUTAGE = "outage"  # stored, but validated with an outage gap the venue may since have filled


@dataclass(frozen=True)
class Series:
    """One venue's partitioned assets: ``instruments`` in the configured (partition) order."""

    venue: str
    instruments: tuple[str, ...]
    start_date: date

    @property
    def dvol(self) -> bool:
        return self.venue == DVOL_VENUE

    def partition_key(self, instrument: str, day: date) -> str:
        return partition_key(self.venue, instrument, day)

    def split_key(self, key: str) -> tuple[str, date]:
        """(instrument, day) of one of this series' partition keys (ValueError otherwise)."""
        return split_partition_key(self.venue, key)

    def days(self, first: date, last: date) -> list[date]:
        first = max(first, self.start_date)
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]


@dataclass(frozen=True, order=True)
class Day:
    """One partition of one series."""

    venue: str
    instrument: str
    day: date

    @property
    def id(self) -> str:
        return f"{self.venue}|{self.instrument}|{self.day.isoformat()}"

    @classmethod
    def from_id(cls, value: str) -> Day:
        venue, instrument, day = value.split("|")
        return cls(venue, instrument, date.fromisoformat(day))


@dataclass(frozen=True)
class Batch:
    """One run: days ``start..end`` (inclusive) x ``instruments`` of one series."""

    series: Series
    instruments: tuple[str, ...]
    start: date
    end: date
    reasons: tuple[tuple[str, int], ...] = ()  # (reason, days) counts, for the run's tags
    tries: int = 1  # the highest try number among the batch's days

    @property
    def venue(self) -> str:
        return self.series.venue

    @property
    def days(self) -> list[Day]:
        span = [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]
        return [Day(self.venue, inst, d) for inst in self.instruments for d in span]

    @property
    def range_start(self) -> str:
        return self.series.partition_key(self.instruments[0], self.start)

    @property
    def range_end(self) -> str:
        return self.series.partition_key(self.instruments[-1], self.end)

    def describe(self) -> str:
        span = self.start.isoformat() if self.start == self.end else f"{self.start}..{self.end}"
        return f"{self.venue} {','.join(self.instruments)} {span}"


# -- the nightly runs --------------------------------------------------------------------------------


def nightly_batch(series: Series, now: datetime) -> Batch | None:
    """Yesterday (relative to ``now``, UTC) for every instrument of ``series`` in one run, or None
    when the series starts later."""
    day = latest_closed_day(now)
    if day < series.start_date or not series.instruments:
        return None
    return Batch(series, series.instruments, day, day)


# -- backoff bookkeeping -------------------------------------------------------------------------------


@dataclass
class Attempts:
    """How often the sensor requested one day, when last, why, and whether it gave up."""

    tries: int
    last_at: float  # epoch seconds of the latest request
    reason: str
    gave_up: bool = False

    def to_json(self) -> dict:
        return {
            "tries": self.tries,
            "last_at": round(self.last_at, 3),
            "reason": self.reason,
            "gave_up": self.gave_up,
        }

    @classmethod
    def from_json(cls, data: Mapping) -> Attempts:
        return cls(int(data["tries"]), float(data["last_at"]), str(data["reason"]), bool(data.get("gave_up")))


@dataclass
class Backoff:
    """Per-day request counts (the sensor's cursor): exponential backoff, then giving up.

    The first request of a day is immediate; try ``n + 1`` waits ``base_s * 2 ** (n - 1)`` after try
    ``n``; after ``max_tries`` requests a day that still needs work is given up (reported once).
    A day that no longer needs work is forgotten, so a later problem starts from zero again.
    """

    base_s: float
    max_tries: int
    attempts: dict[str, Attempts] = field(default_factory=dict)

    def to_cursor(self) -> str:
        return json.dumps(
            {"v": CURSOR_VERSION, "days": {k: a.to_json() for k, a in sorted(self.attempts.items())}},
            separators=(",", ":"),
        )

    @classmethod
    def from_cursor(cls, cursor: str | None, *, base_s: float, max_tries: int) -> Backoff:
        book = cls(base_s=base_s, max_tries=max_tries)
        if not cursor:
            return book
        try:
            data = json.loads(cursor)
            if data.get("v") != CURSOR_VERSION:
                return book
            book.attempts = {k: Attempts.from_json(v) for k, v in data["days"].items()}
        except (ValueError, KeyError, TypeError, AttributeError):
            return book  # an unreadable cursor (edited by hand) starts afresh rather than wedging the sensor
        return book

    def next_at(self, day: Day) -> float | None:
        """When ``day`` may be requested again (epoch s); None if it never may (given up)."""
        attempts = self.attempts.get(day.id)
        if attempts is None:
            return 0.0
        if attempts.tries >= self.max_tries:
            return None
        return attempts.last_at + self.base_s * 2 ** (attempts.tries - 1)

    def due(self, day: Day, now: float) -> bool:
        at = self.next_at(day)
        return at is not None and now >= at

    def record_request(self, day: Day, reason: Reason, now: float) -> int:
        """Count a request of ``day``; returns its try number."""
        previous = self.attempts.get(day.id)
        tries = (previous.tries if previous else 0) + 1
        self.attempts[day.id] = Attempts(tries, now, reason.value)
        return tries

    def give_up_exhausted(self, needing: Mapping[Day, Reason], now: float) -> list[tuple[Day, Attempts]]:
        """Days of ``needing`` whose tries are used up and whose last try had time to run, not yet
        reported: mark them given up and return them (each is reported exactly once)."""
        out = []
        for day, reason in sorted(needing.items()):
            attempts = self.attempts.get(day.id)
            if attempts is None or attempts.gave_up or attempts.tries < self.max_tries:
                continue
            if now < attempts.last_at + self.base_s * 2 ** (attempts.tries - 1):
                continue  # the last try may still be running or just finished: judge it next time
            attempts.gave_up = True
            attempts.reason = reason.value
            out.append((day, attempts))
        return out

    def forget_except(self, still_needing: Iterable[Day], in_flight: Iterable[Day], first_day: date) -> None:
        """Drop days that no longer need work (healed) and days older than ``first_day`` (out of scope)."""
        keep = {d.id for d in still_needing} | {d.id for d in in_flight}
        self.attempts = {
            k: a for k, a in self.attempts.items() if k in keep and Day.from_id(k).day >= first_day
        }

    def given_up(self) -> list[tuple[Day, Attempts]]:
        return sorted(
            ((Day.from_id(k), a) for k, a in self.attempts.items() if a.gave_up), key=lambda item: item[0]
        )


# -- the gap backfill plan -----------------------------------------------------------------------------


@dataclass(frozen=True)
class GapPolicy:
    """The knobs of ``automation:`` the plan needs (see :class:`~marketdata_assets.settings.AutomationSettings`)."""

    lookback_days: int = 30
    history_backfill: bool = True
    backfill_order: str = "newest_first"
    max_days_per_run: int = 31
    max_runs_per_tick: int = 6
    max_runs_in_flight_per_venue: int = 1
    nightly_grace_minutes: int = 120

    def __post_init__(self) -> None:
        if self.backfill_order not in ("newest_first", "oldest_first"):
            raise ValueError(
                f"backfill_order must be newest_first or oldest_first, got {self.backfill_order!r}"
            )


@dataclass(frozen=True)
class ScanWindow:
    """The days the sensor looks at: missing/failed in ``[missing_from, last]``, outages in
    ``[outage_from, last]``."""

    missing_from: date | None  # None: from each series' start_date
    outage_from: date
    last: date

    def first_for(self, series: Series) -> date:
        return max(series.start_date, self.missing_from or series.start_date)


def scan_window(policy: GapPolicy, now: datetime) -> ScanWindow:
    """Which closed days the sensor considers at ``now``.

    The day that closed last is left to the nightly schedule for ``nightly_grace_minutes`` after
    midnight UTC, so the sensor and the schedule do not both request it.
    """
    now = now.astimezone(UTC)
    last = latest_closed_day(now)
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC)
    if now < midnight + timedelta(minutes=policy.nightly_grace_minutes):
        last -= timedelta(days=1)
    outage_from = last - timedelta(days=policy.lookback_days - 1)
    return ScanWindow(None if policy.history_backfill else outage_from, outage_from, last)


@dataclass
class GapPlan:
    """One evaluation's outcome: the runs to request, and what was held back and why."""

    batches: list[Batch] = field(default_factory=list)
    waiting: dict[Day, float] = field(default_factory=dict)  # backing off: day -> next try (epoch s)
    busy_venues: dict[str, int] = field(default_factory=dict)  # venue -> runs in flight (none requested)
    deferred: int = 0  # due days left for a later tick by the per-tick / per-venue caps
    in_flight: int = 0  # days needing work that a queued or running run already covers
    given_up: list[tuple[Day, Attempts]] = field(default_factory=list)  # newly given up this tick

    def summary(self) -> str:
        parts = [f"{len(self.batches)} run(s) requested"]
        if self.in_flight:
            parts.append(f"{self.in_flight} day(s) already queued or running")
        if self.deferred:
            parts.append(f"{self.deferred} day(s) deferred by the per-tick caps")
        if self.waiting:
            parts.append(f"{len(self.waiting)} day(s) backing off")
        if self.busy_venues:
            parts.append(
                "busy: " + ", ".join(f"{v} ({n} in flight)" for v, n in sorted(self.busy_venues.items()))
            )
        if self.given_up:
            parts.append(f"{len(self.given_up)} day(s) given up")
        return "; ".join(parts)


def plan_gap_backfill(
    series: Sequence[Series],
    needing: Mapping[Day, Reason],
    in_flight: set[Day],
    runs_in_flight: Mapping[str, int],
    backoff: Backoff,
    policy: GapPolicy,
    now: float,
) -> GapPlan:
    """The runs to request for the days in ``needing`` (each with why), skipping days in flight or
    backing off, batched per venue into day x instrument rectangles of at most ``max_days_per_run``
    days, ordered by ``backfill_order``, capped per tick and per venue. Records the requests in
    ``backoff`` and gives up on days whose tries are used up."""
    plan = GapPlan()
    plan.given_up = backoff.give_up_exhausted({d: r for d, r in needing.items() if d not in in_flight}, now)
    newest_first = policy.backfill_order == "newest_first"
    by_venue = {s.venue: s for s in series}
    due: dict[str, dict[Day, Reason]] = defaultdict(dict)
    for day, reason in needing.items():
        if day.venue not in by_venue:
            continue
        if day in in_flight:
            plan.in_flight += 1
            continue
        if not backoff.due(day, now):
            at = backoff.next_at(day)
            if at is not None:
                plan.waiting[day] = at
            continue
        due[day.venue][day] = reason

    candidates: list[Batch] = []
    for venue, days in due.items():
        busy = runs_in_flight.get(venue, 0)
        room = policy.max_runs_in_flight_per_venue - busy
        if room <= 0:
            plan.busy_venues[venue] = busy
            plan.deferred += len(days)
            continue
        batches = batch_days(by_venue[venue], days, policy.max_days_per_run, newest_first=newest_first)
        candidates += batches[:room]
        plan.deferred += sum(len(b.days) for b in batches[room:])

    candidates.sort(key=lambda b: (-b.end.toordinal(), b.venue) if newest_first else (b.start, b.venue))
    chosen, rest = candidates[: policy.max_runs_per_tick], candidates[policy.max_runs_per_tick :]
    plan.deferred += sum(len(b.days) for b in rest)
    for batch in chosen:
        reasons: Counter[str] = Counter()
        tries = 0
        for day in batch.days:
            reason = due[batch.venue][day]
            reasons[reason.value] += 1
            tries = max(tries, backoff.record_request(day, reason, now))
        plan.batches.append(
            Batch(
                batch.series, batch.instruments, batch.start, batch.end, tuple(sorted(reasons.items())), tries
            )
        )
    return plan


def batch_days(
    series: Series, days: Mapping[Day, Reason] | Iterable[Day], max_days: int, *, newest_first: bool = True
) -> list[Batch]:
    """Rectangles covering exactly ``days`` of one series: per instrument, contiguous day runs cut
    into chunks of at most ``max_days`` (cut from the newest end when ``newest_first``), then
    identical chunks of instruments adjacent in the configured order merged into one run. Ordered
    newest first (by end) or oldest first (by start)."""
    per_instrument: dict[str, list[date]] = defaultdict(list)
    for day in days:
        if day.venue != series.venue:
            raise ValueError(f"{day.id} is not a day of {series.venue}")
        per_instrument[day.instrument].append(day.day)
    chunks: dict[tuple[date, date], list[str]] = defaultdict(list)
    for instrument in series.instruments:
        for start, end in _chunks(sorted(set(per_instrument.get(instrument, []))), max_days, newest_first):
            chunks[(start, end)].append(instrument)
    unknown = set(per_instrument) - set(series.instruments)
    if unknown:
        raise ValueError(f"{series.venue}: unknown instruments {', '.join(sorted(unknown))}")
    order = {inst: i for i, inst in enumerate(series.instruments)}
    batches = []
    for (start, end), instruments in chunks.items():
        group: list[str] = []
        for instrument in instruments:  # already in configured order
            if group and order[instrument] != order[group[-1]] + 1:
                batches.append(Batch(series, tuple(group), start, end))
                group = []
            group.append(instrument)
        batches.append(Batch(series, tuple(group), start, end))
    if newest_first:
        batches.sort(key=lambda b: (-b.end.toordinal(), order[b.instruments[0]]))
    else:
        batches.sort(key=lambda b: (b.start, order[b.instruments[0]]))
    return batches


def _chunks(days: list[date], max_days: int, newest_first: bool) -> list[tuple[date, date]]:
    runs: list[list[date]] = []
    for day in days:
        if runs and (day - runs[-1][-1]).days == 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    out = []
    for run in runs:
        if newest_first:
            for end_index in range(len(run), 0, -max_days):
                part = run[max(0, end_index - max_days) : end_index]
                out.append((part[0], part[-1]))
        else:
            for start_index in range(0, len(run), max_days):
                part = run[start_index : start_index + max_days]
                out.append((part[0], part[-1]))
    return out
