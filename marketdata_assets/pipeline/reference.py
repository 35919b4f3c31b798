"""Reference data: a venue's listed instruments -> ``reference/instruments/exchange=<venue>/``, then the
configured symbols checked against them.

The file is written before the check, so what the venue lists can be inspected
(``MarketDataClient().instruments(...)``) even when the settings name a symbol it does not list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from marketdata_assets.storage.root import StorageRoot


@dataclass
class InstrumentsOutcome:
    """What storing one venue's instruments found: the frame, where it went, and the universe check
    (``error`` names every unknown or delisted configured symbol; halted ones only warn)."""

    venue: str
    frame: pd.DataFrame
    path: str
    bytes: int
    requests: int
    retries: int
    halted: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: Any = None  # venues.instruments.UniverseError

    @property
    def ok(self) -> bool:
        return self.error is None


def store_instruments(
    root: StorageRoot, venue: str, symbols: Sequence[str], fetched: Any
) -> InstrumentsOutcome:
    """Write ``fetched`` (a :class:`~marketdata_assets.venues.instruments.InstrumentsFetch`) and check the
    configured ``symbols`` against it."""
    from marketdata_assets.storage.reference import write_instruments
    from marketdata_assets.venues.instruments import UniverseError, validate_universe

    written = write_instruments(root, venue, fetched.frame)
    outcome = InstrumentsOutcome(
        venue,
        fetched.frame,
        path=written.path,
        bytes=written.bytes,
        requests=fetched.stats.requests,
        retries=fetched.stats.retries,
    )
    try:
        report = validate_universe(list(symbols), fetched.frame, venue)
    except UniverseError as exc:
        outcome.error = exc
        return outcome
    outcome.halted = list(report.halted)
    outcome.warnings = list(report.warnings)
    return outcome
