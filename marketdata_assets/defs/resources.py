"""Dagster resources: where the files live (:class:`StorageResource`) and how each venue is reached
(:class:`VenuesResource`). Asset, check and sensor bodies take them as parameters, so a test or a
deployment swaps them (another root, a simulator, other limits) without touching an asset.

:func:`resources_from_settings` builds both from the settings file; per-deployment secrets come from the
environment through ``EnvVar`` (the month-lock database of object-store roots, ``MARKETDATA_LOCK_DSN``),
so they never land in the definitions snapshot or the UI.
"""

from __future__ import annotations

import os
from typing import Any

from dagster import Config, ConfigurableResource, EnvVar
from pydantic import Field

from marketdata_assets.settings import LoadedSettings
from marketdata_assets.storage.locks import LOCK_DSN_ENV
from marketdata_assets.storage.root import StorageRoot


class StorageResource(ConfigurableResource):
    """The storage root (a local directory, ``file://`` or ``s3://``), claimed for one kind of data:
    synthetic (simulator) data never lands in a root that holds real exchange data, or the other way."""

    uri: str = Field(description="The storage root: a directory, file:// or s3:// URI.")
    synthetic: bool = Field(default=False, description="True when the data comes from the simulator.")
    environment: str = Field(default="local", description="The settings environment that writes here.")
    lock_dsn: str | None = Field(
        default=None,
        description=f"PostgreSQL DSN of the month locks of an object-store root; None: ${LOCK_DSN_ENV}.",
    )

    def root(self) -> StorageRoot:
        root = StorageRoot.from_uri(self.uri, lock_dsn=self.lock_dsn)
        root.claim(synthetic=self.synthetic, environment=self.environment)
        return root


class VenueAccess(Config):
    """How one venue is reached: base URL (None: the real exchange), pacing, retries, shared budget."""

    base_url: str | None = None
    rate_limit_ms: float = 100.0
    timeout_ms: int = 10_000
    max_retries: int = 5
    shared_limit_enabled: bool = True
    shared_limit: float | None = None
    shared_window_s: float | None = None
    shared_safety: float = 0.8
    minute_history_days: int | None = None  # Deribit DVOL only


class VenuesResource(ConfigurableResource):
    """Every configured venue's access settings; :meth:`source` builds a day source for one of them."""

    venues: dict[str, VenueAccess]

    def access(self, venue: str) -> VenueAccess:
        if venue not in self.venues:
            raise KeyError(f"venue {venue!r} is not configured; configured: {', '.join(self.venues)}")
        return self.venues[venue]

    def client_options(self, venue: str) -> dict[str, Any]:
        """The keyword arguments every client of ``venue`` gets: pacing, timeout, retries, shared budget."""
        access = self.access(venue)
        return {
            "rate_limit_ms": access.rate_limit_ms,
            "timeout_ms": access.timeout_ms,
            "max_retries": access.max_retries,
            "shared_limiter": self.shared_limiter(venue),
        }

    def source(self, venue: str) -> Any:
        """A fresh day source for ``venue`` (close it after use); see :mod:`marketdata_assets.venues`."""
        from marketdata_assets.venues.registry import get_source

        access = self.access(venue)
        extra = (
            {} if access.minute_history_days is None else {"minute_history_days": access.minute_history_days}
        )
        return get_source(venue, access.base_url, **self.client_options(venue), **extra)

    def load_instruments(self, venue: str) -> Any:
        """The venue's listed spot instruments (one ``load_markets`` request, same limits as candles)."""
        from marketdata_assets.venues.instruments import load_instruments

        return load_instruments(venue, self.access(venue).base_url, **self.client_options(venue))

    def shared_limiter(self, venue: str) -> Any:
        """The machine-wide budget of ``venue`` (False when disabled)."""
        from marketdata_assets.venues.limiter import shared_limiter_for

        access = self.access(venue)
        return shared_limiter_for(
            venue,
            access.base_url,
            enabled=access.shared_limit_enabled,
            limit=access.shared_limit,
            window_s=access.shared_window_s,
            safety=access.shared_safety,
        )


def venue_access(cfg: Any) -> VenueAccess:
    """A venue's access settings from its ``VenueSettings`` / ``DvolSettings``."""
    limits = cfg.shared_rate_limit
    return VenueAccess(
        base_url=cfg.base_url,
        rate_limit_ms=cfg.rate_limit_ms,
        timeout_ms=cfg.timeout_ms,
        max_retries=cfg.max_retries,
        shared_limit_enabled=limits.enabled,
        shared_limit=limits.limit,
        shared_window_s=limits.window_s,
        shared_safety=limits.safety,
        minute_history_days=getattr(cfg, "minute_history_days", None),
    )


def resources_from_settings(settings: LoadedSettings) -> dict[str, Any]:
    """``storage`` and ``venues`` as the settings file says (the lock DSN from the environment)."""
    venues = {venue: venue_access(cfg) for venue, cfg in settings.venues.items()}
    if settings.dvol is not None:
        from marketdata_assets.universe import DVOL_VENUE

        venues[DVOL_VENUE] = venue_access(settings.dvol)
    lock_dsn = EnvVar(LOCK_DSN_ENV) if os.environ.get(LOCK_DSN_ENV) else None
    return {
        "storage": StorageResource(
            uri=settings.storage_root,
            synthetic=settings.synthetic,
            environment=settings.environment,
            lock_dsn=lock_dsn,
        ),
        "venues": VenuesResource(venues=venues),
    }
