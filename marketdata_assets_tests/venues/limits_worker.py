"""Separate processes for the shared-limiter tests.

``python -m marketdata_assets_tests.venues.limits_worker take SPEC_JSON``: book ``count`` requests to ``endpoint`` in a :class:`SharedLimiter` (from
``state_dir``, ``venue``, ``limit``, ``window_s``, ``safety``), starting at epoch ``start_at``; print
one JSON line ``{"grants": [[slot, sent_at, cost], ...], "blocked": null | {...}}``.

``... block SPEC_JSON``: record a block of ``seconds`` with ``reason``; print ``{"until": ..., "pid": ...}``.

:func:`serve_jobs`: a long-lived candle-fetching worker, like one run's process, started by
``multiprocessing`` (the e2e test forks three from a preloaded fork server, so ccxt is imported
once). For each job (``venue``, ``settings`` = a ``VenueSettings`` mapping, ``state_dir``,
``symbol``, ``days``, ``start_at``, ``stop_file``) it builds the source exactly the way the settings
say (``limiter_from_settings``), fetches the days from ``start_at`` on and sends back per-day
results. Once ``stop_file`` exists, the day being fetched is the last one.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import date
from typing import Any

from marketdata_assets.venues.limiter import SharedLimiter, VenueBlocked, documented_budget


def _sleep_until(moment: float) -> None:
    delay = moment - time.time()
    if delay > 0:
        time.sleep(delay)


def take(spec: dict[str, Any]) -> dict[str, Any]:
    budget = documented_budget(
        spec["venue"], limit=spec.get("limit"), window_s=spec.get("window_s"), safety=spec.get("safety")
    )
    limiter = SharedLimiter(budget, spec.get("key"), spec["state_dir"])
    _sleep_until(spec.get("start_at", 0.0))
    grants: list[list[float]] = []
    blocked = None
    for _ in range(int(spec["count"])):
        try:
            grant = limiter.acquire(spec["endpoint"], max_block_wait_s=spec.get("max_block_wait_s", 60.0))
        except VenueBlocked as exc:
            blocked = {"message": str(exc), "pid": exc.pid, "until": exc.until, "reason": exc.reason}
            break
        grants.append([grant.slot, time.time(), grant.cost])
    return {"grants": grants, "blocked": blocked}


def block(spec: dict[str, Any]) -> dict[str, Any]:
    limiter = SharedLimiter(documented_budget(spec["venue"]), spec.get("key"), spec["state_dir"])
    return {"until": limiter.block(float(spec["seconds"]), spec["reason"]), "pid": os.getpid()}


def serve_jobs(conn: Any) -> None:
    """A candle-fetching worker process, like one run's: jobs arrive on ``conn`` (``None`` ends it)."""
    from marketdata_assets.settings import VenueSettings
    from marketdata_assets.venues.endpoints import CCXT_VENUES, make_ccxt_exchange
    from marketdata_assets.venues.limiter import limiter_from_settings
    from marketdata_assets.venues.registry import get_source

    for venue in CCXT_VENUES:  # import ccxt and build each exchange once before the clock starts
        make_ccxt_exchange(venue).close()
    conn.send({"ready": os.getpid()})
    while (job := conn.recv()) is not None:
        cfg = VenueSettings.model_validate(job["settings"])
        source = get_source(
            job["venue"],
            cfg.base_url,
            rate_limit_ms=cfg.rate_limit_ms,
            timeout_ms=cfg.timeout_ms,
            max_retries=cfg.max_retries,
            shared_limiter=limiter_from_settings(job["venue"], cfg, state_dir=job["state_dir"]),
        )
        days: list[dict[str, Any]] = []
        _sleep_until(job["start_at"])
        started = time.time()
        try:
            for day in job["days"]:
                try:
                    result = source.fetch_day(job["symbol"], date.fromisoformat(day))
                    stats = result.stats
                    days.append(
                        {
                            "day": day,
                            "rows": len(result.frame),
                            "requests": stats.requests,
                            "rate_limited": stats.rate_limited,
                            "error": None,
                        }
                    )
                except Exception as exc:  # noqa: BLE001 - reported to the test, which judges it
                    days.append({"day": day, "rows": 0, "requests": 0, "rate_limited": 0, "error": str(exc)})
                if job.get("stop_file") and os.path.exists(job["stop_file"]):
                    break
        finally:
            source.close()
        conn.send({"pid": os.getpid(), "days": days, "started": started, "ended": time.time()})


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] in ("take", "block"):
        result = take(json.loads(argv[1])) if argv[0] == "take" else block(json.loads(argv[1]))
        print(json.dumps(result), flush=True)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
