"""Progress hooks: the asset bodies report each finished partition; a terminal front end may listen.

Runs launched by ``marketdata backfill`` execute in the CLI's own process (in-process executor), so a
listener registered there sees every partition as it finishes. In other processes nobody listens
and reporting costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_listeners: list[Callable[[Any], None]] = []


def report(outcome: Any) -> None:
    """Tell every listener that a partition finished (outcome: :class:`ingest.PartitionOutcome`)."""
    for listener in list(_listeners):
        listener(outcome)


@contextmanager
def listening(listener: Callable[[Any], None]) -> Iterator[None]:
    """Register ``listener`` for the duration of the block."""
    _listeners.append(listener)
    try:
        yield
    finally:
        _listeners.remove(listener)
