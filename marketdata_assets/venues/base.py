"""What every venue source returns and raises: the day's frame, per-fetch stats, clear errors.

A source answers one question -- "the closed candles (or DVOL points) of this instrument for this
UTC day" -- with a :class:`FetchResult`. Failures are :class:`VenueError` (or a subclass) whose
message names the venue, the instrument, the day and the last underlying error, so a failed
partition explains itself in the Dagster UI without a stack trace.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any, Protocol

import pandas as pd

_MAX_ERROR_CHARS = 400


def describe_error(exc: BaseException | None) -> str | None:
    """``ClassName: message`` of an exception, shortened to something a log line can carry."""
    if exc is None:
        return None
    text = " ".join(str(exc).split())
    if len(text) > _MAX_ERROR_CHARS:
        text = text[: _MAX_ERROR_CHARS - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass
class FetchStats:
    """What one ``fetch_day`` cost and saw; rendered as partition metadata by the ingest layer."""

    requests: int = 0  # HTTP attempts, failed ones included
    retries: int = 0  # attempts that were repeated after a transient failure
    rows_received: int = 0  # rows in the venue's answers, before any filtering
    duplicate_rows: int = 0  # rows whose timestamp had already been received in this fetch
    pages: int = 0  # successful page answers (empty ones included)
    empty_pages: int = 0
    rate_limited: int = 0  # answers that were rate-limit or ban responses
    source_url: str = ""  # endpoint used, without query string or secrets
    last_error: str | None = None  # last failure seen, even if a retry then succeeded
    elapsed_s: float = 0.0
    waited_s: float = 0.0  # time spent in backoff / Retry-After waits

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FetchResult:
    """One instrument-day: the frame (rows in fetch order, duplicates kept) and how it was obtained."""

    venue: str
    instrument: str
    day: date
    frame: pd.DataFrame
    stats: FetchStats
    open_candles_dropped: int = 0  # rows not yet closed at fetch time (open_time + interval > now)
    rows_outside_day: int = 0  # rows the venue returned that fall outside the requested UTC day
    resolution_s: int = 60  # candle/point spacing of ``frame`` in seconds
    notes: list[str] = field(default_factory=list)  # policy decisions worth surfacing (e.g. a fallback)


class DaySource(Protocol):
    """The one interface the rest of the platform depends on."""

    venue: str

    def fetch_day(self, instrument: str, day: date) -> FetchResult: ...

    def close(self) -> None: ...


class VenueError(RuntimeError):
    """A fetch that failed for good; ``str()`` names venue, instrument, day and the last error."""

    def __init__(
        self,
        venue: str,
        symbol: str | None,
        day: date | None,
        message: str,
        last_error: str | BaseException | None = None,
    ) -> None:
        self.venue = venue
        self.symbol = symbol
        self.day = day
        self.message = message
        self.last_error = describe_error(last_error) if isinstance(last_error, BaseException) else last_error
        super().__init__(self._render())

    def _render(self) -> str:
        where = " ".join(
            part for part in (self.venue, self.symbol, self.day.isoformat() if self.day else None) if part
        )
        text = f"{where}: {self.message}"
        if self.last_error:
            text += f" (last error: {self.last_error})"
        return text

    def __reduce__(self) -> tuple[Any, ...]:  # picklable across Dagster's process boundaries
        return (type(self)._rebuild, (self.__dict__.copy(),))

    @classmethod
    def _rebuild(cls, state: dict[str, Any]) -> VenueError:
        error = cls.__new__(cls)
        error.__dict__.update(state)
        RuntimeError.__init__(error, error._render())
        return error


class MalformedResponseError(VenueError):
    """The venue answered, but not in its documented shape; ``what`` says which part was wrong."""

    def __init__(
        self,
        venue: str,
        symbol: str | None,
        day: date | None,
        what: str,
        last_error: str | BaseException | None = None,
    ) -> None:
        self.what = what
        super().__init__(venue, symbol, day, f"malformed response: {what}", last_error)


class UnknownSymbolError(VenueError):
    """Symbols the venue does not list, each with its closest listed names."""

    def __init__(self, venue: str, unknown: Sequence[str], known: Sequence[str]) -> None:
        self.unknown = list(unknown)
        self.known = sorted(known)
        self.suggestions = {s: close_matches(s, self.known) for s in self.unknown}
        parts = []
        for symbol, matches in self.suggestions.items():
            hint = f"did you mean {', '.join(matches)}?" if matches else "no close match"
            parts.append(f"{symbol!r} ({hint})")
        sample = ", ".join(self.known[:20]) + (" ..." if len(self.known) > 20 else "")
        message = (
            f"unknown symbol{'s' if len(parts) > 1 else ''} {'; '.join(parts)}; "
            f"{len(self.known)} symbols listed, e.g. {sample or 'none'}"
        )
        super().__init__(venue, ", ".join(self.unknown), None, message)


def close_matches(name: str, known: Sequence[str], n: int = 5) -> list[str]:
    """Listed names closest to ``name``, ignoring case and separators (``btcusdt`` ~ ``BTC/USDT``)."""
    squashed = {k.replace("/", "").replace("-", "").upper(): k for k in known}
    key = name.replace("/", "").replace("-", "").upper()
    if key in squashed:
        return [squashed[key]]
    hits = difflib.get_close_matches(key, list(squashed), n=n, cutoff=0.6)
    return [squashed[h] for h in hits]
