"""Counters behind ``GET /__sim/stats``."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from marketdata_assets.universe import VENUES


class Stats:
    """Per-venue request, row, breach and fault counters (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._requests: dict[str, Counter[str]] = {v: Counter() for v in VENUES}
            self._statuses: dict[str, Counter[str]] = {v: Counter() for v in VENUES}
            self._rows: Counter[str] = Counter()
            self._breaches: dict[str, Counter[str]] = {v: Counter() for v in VENUES}
            self._faults: dict[str, Counter[str]] = {v: Counter() for v in VENUES}

    def request(self, venue: str, endpoint: str) -> None:
        with self._lock:
            self._requests.setdefault(venue, Counter())[endpoint] += 1

    def status(self, venue: str, status: int | str) -> None:
        with self._lock:
            self._statuses.setdefault(venue, Counter())[str(status)] += 1

    def rows(self, venue: str, count: int) -> None:
        with self._lock:
            self._rows[venue] += count

    def breach(self, venue: str, kind: str) -> None:
        with self._lock:
            self._breaches.setdefault(venue, Counter())[kind] += 1

    def fault(self, venue: str, kind: str, times: int = 1) -> None:
        with self._lock:
            self._faults.setdefault(venue, Counter())[kind] += times

    def snapshot(self, bans: dict[str, list[dict[str, Any]]] | None = None) -> dict[str, Any]:
        bans = bans or {}
        with self._lock:
            venues = {}
            for venue in sorted(set(self._requests) | set(VENUES)):
                requests = self._requests.get(venue, Counter())
                breaches = self._breaches.get(venue, Counter())
                faults = self._faults.get(venue, Counter())
                venues[venue] = {
                    "requests": sum(requests.values()),
                    "requests_by_endpoint": dict(sorted(requests.items())),
                    "responses_by_status": dict(sorted(self._statuses.get(venue, Counter()).items())),
                    "rows_served": self._rows[venue],
                    "limit_breaches": sum(breaches.values()),
                    "limit_breaches_by_kind": dict(sorted(breaches.items())),
                    "bans_active": bans.get(venue, []),
                    "faults_injected": sum(faults.values()),
                    "faults_injected_by_kind": dict(sorted(faults.items())),
                }
        return {"venues": venues}
