"""One place that knows which source serves which venue.

``get_source("binance", base_url, ...)`` -> :class:`CcxtCandleSource`; ``get_source("deribit", ...)``
-> :class:`DeribitDvolSource`. Sources are imported on demand so asking for Deribit never pays for
importing ccxt.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from marketdata_assets.universe import CANDLE_VENUES as VENUES
from marketdata_assets.universe import DVOL_VENUE
from marketdata_assets.venues.base import DaySource
from marketdata_assets.venues.retry import RetryPolicy


def get_source(
    venue: str,
    base_url: str | None = None,
    *,
    rate_limit_ms: float | None = None,
    timeout_ms: int = 10_000,
    max_retries: int | None = None,
    retry: RetryPolicy | None = None,
    **kwargs: Any,
) -> DaySource:
    """The day source for ``venue``; ``max_retries`` overrides ``retry.max_retries``.

    Extra keyword arguments go to the source (e.g. ``minute_history_days`` for Deribit,
    ``clock`` / ``sleep`` for tests).
    """
    policy = retry or RetryPolicy()
    if max_retries is not None:
        policy = dataclasses.replace(policy, max_retries=max_retries)
    if venue in VENUES:
        from marketdata_assets.venues.ccxt_venue import CcxtCandleSource

        return CcxtCandleSource(
            venue, base_url, rate_limit_ms=rate_limit_ms, timeout_ms=timeout_ms, retry=policy, **kwargs
        )
    if venue == DVOL_VENUE:
        from marketdata_assets.venues.deribit import DeribitDvolSource

        if kwargs.get("minute_history_days") is None:
            kwargs.pop("minute_history_days", None)
        return DeribitDvolSource(
            base_url, rate_limit_ms=rate_limit_ms, timeout_ms=timeout_ms, retry=policy, **kwargs
        )
    raise ValueError(f"unknown venue {venue!r}; expected one of {', '.join((*VENUES, DVOL_VENUE))}")
