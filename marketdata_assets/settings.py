"""Typed settings: ``config/<env>.yaml`` (+ environment variables) -> the universe, storage root and limits.

Which file is read:

* ``MARKETDATA_CONFIG=/path/to/file.yaml`` wins;
* otherwise ``config/<MARKETDATA_ENV>.yaml`` in the project (``MARKETDATA_ENV`` defaults to ``local``).

String values may use ``${VAR}`` or ``${VAR:-default}`` to read environment variables (the demo config
points the venues at the simulator this way). ``MARKETDATA_ROOT`` overrides ``storage.root``.

A bad file raises one :class:`SettingsError` that names the file, the key and what was expected;
unknown keys are errors, not ignored.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from marketdata_assets.frames import symbol_key

if TYPE_CHECKING:  # pragma: no cover
    from marketdata_assets.quality.day_checks import CheckPolicy

from marketdata_assets.universe import CANDLE_VENUES, DVOL_CURRENCIES, DVOL_FIRST_DAY

PROJECT_DIR = Path(__file__).resolve().parent.parent
CONFIG_DIR = PROJECT_DIR / "config"


_SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,15}/[A-Z0-9]{2,10}$")
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_URI_SCHEME_RE = re.compile(r"^([a-z][a-z0-9+.-]*)://")
SUPPORTED_ROOT_SCHEMES = ("file", "s3")


class SettingsError(ValueError):
    """A configuration file that cannot be used; the message names the file and the key."""


def _check_symbol(value: str) -> str:
    if not _SYMBOL_RE.match(value):
        raise ValueError(
            f"expected a unified spot symbol like 'BTC/USDT' (BASE/QUOTE, upper case), got {value!r}"
        )
    return value


Symbol = Annotated[str, AfterValidator(_check_symbol)]


def _check_base_url(value: str) -> str:
    if not re.match(r"^https?://[^\s/]+", value):
        raise ValueError(f"expected an http(s) URL, got {value!r}")
    return value.rstrip("/")


BaseUrl = Annotated[str, AfterValidator(_check_base_url)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SharedRateLimitSettings(_Strict):
    """The venue's per-IP budget shared by every process on this machine (``venues.limiter``)."""

    enabled: bool = Field(
        default=True, description="False: each process paces itself only (ccxt + rate_limit_ms)."
    )
    limit: float | None = Field(
        default=None,
        gt=0,
        description="The venue's allowance per window in its own units (Binance request weight, Bybit "
        "requests, OKX history-candles requests, Deribit requests); None = the published limit. "
        "The venue's other buckets scale alike.",
    )
    window_s: float | None = Field(default=None, gt=0, description="Window length; None = published.")
    safety: float = Field(default=0.8, gt=0, le=1, description="Fraction of the limit we use.")


class VenueSettings(_Strict):
    """One candle venue: what to fetch, from where, how fast."""

    symbols: list[Symbol] = Field(min_length=1)
    start_date: date
    base_url: BaseUrl | None = Field(
        default=None,
        description="Root the venue's native paths append to; None = the real exchange.",
    )
    rate_limit_ms: float = Field(
        default=100.0,
        gt=0,
        description=(
            "Minimum spacing between any two requests of one client, in ms; on top of ccxt's "
            "per-endpoint cost model, which follows the venue's published limits."
        ),
    )
    timeout_ms: int = Field(default=10_000, gt=0)
    max_retries: int = Field(default=5, ge=0, le=20)
    shared_rate_limit: SharedRateLimitSettings = Field(default_factory=SharedRateLimitSettings)

    @field_validator("symbols")
    @classmethod
    def _unique_symbols(cls, value: list[str]) -> list[str]:
        keys = [symbol_key(s) for s in value]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise ValueError(f"symbols listed twice: {', '.join(dupes)}")
        return value

    @property
    def symbol_keys(self) -> list[str]:
        return [symbol_key(s) for s in self.symbols]

    def symbol_for_key(self, key: str) -> str:
        for symbol in self.symbols:
            if symbol_key(symbol) == key:
                return symbol
        raise KeyError(f"unknown symbol key {key!r}; configured: {', '.join(self.symbol_keys)}")


class DvolSettings(_Strict):
    """Deribit's DVOL volatility index."""

    currencies: list[Literal[DVOL_CURRENCIES]] = Field(min_length=1)
    start_date: date
    base_url: BaseUrl | None = None
    rate_limit_ms: float = Field(default=100.0, gt=0)
    timeout_ms: int = Field(default=10_000, gt=0)
    max_retries: int = Field(default=5, ge=0, le=20)
    shared_rate_limit: SharedRateLimitSettings = Field(default_factory=SharedRateLimitSettings)
    minute_history_days: int = Field(
        default=30,
        ge=0,
        description="Days back from today fetched at 1-minute resolution; older days are fetched hourly.",
    )

    @field_validator("start_date")
    @classmethod
    def _not_before_dvol(cls, value: date) -> date:
        if value < DVOL_FIRST_DAY:
            raise ValueError(f"DVOL starts on {DVOL_FIRST_DAY.isoformat()}; got {value.isoformat()}")
        return value


class StorageSettings(_Strict):
    root: str = Field(
        description="Local path (relative to the config file) or URI: file:///..., s3://bucket/prefix"
    )

    @field_validator("root")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        match = _URI_SCHEME_RE.match(value)
        if match and match.group(1) not in SUPPORTED_ROOT_SCHEMES:
            raise ValueError(
                f"unsupported storage scheme {match.group(1)!r}; use a path or one of "
                + ", ".join(f"{s}://" for s in SUPPORTED_ROOT_SCHEMES)
            )
        if not value.strip():
            raise ValueError("must not be empty")
        return value


class QualitySettings(_Strict):
    """How strict validation is and how gaps are named (``quality:`` in the config file)."""

    outage_min_minutes: int = Field(
        default=6,
        ge=1,
        le=1440,
        description="A run of this many or more missing minutes is an outage; shorter runs are "
        "minutes without trades. Raise it for illiquid symbols.",
    )
    outage_min_minutes_by_symbol: dict[Symbol, Annotated[int, Field(ge=1, le=1440)]] = Field(
        default_factory=dict,
        description="Per-symbol override of outage_min_minutes, e.g. {XRP/ETH: 30}.",
    )
    price_jump_threshold: float = Field(
        default=0.1,
        gt=0,
        description="Relative change between consecutive closes that the continuity rule (check complete) warns about.",
    )
    max_quarantined_rows: int = Field(
        default=0,
        ge=0,
        description="A validated day with more quarantined rows than this fails its blocking schema "
        "check: it is not resampled until the day is fetched again or the limit raised.",
    )
    failure_rows: int = Field(
        default=20, ge=1, le=500, description="How many failing rows a check shows in its metadata."
    )
    max_no_trade_share: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="The completeness rule (check complete) fails a day when more than this share of its minutes had "
        "no trade (omitted or zero-volume filler); outages and quarantined minutes always fail it.",
    )
    max_staleness_hours: float = Field(
        default=26,
        gt=0,
        description="The freshness check warns when a series' newest served 1m candle is older than this.",
    )

    def outage_minutes_for(self, symbol: str) -> int:
        return self.outage_min_minutes_by_symbol.get(symbol, self.outage_min_minutes)

    def check_policy(self, symbol: str | None = None) -> CheckPolicy:
        """The checks' thresholds, for ``symbol`` (a unified symbol) when given."""
        from marketdata_assets.quality.day_checks import CheckPolicy

        return CheckPolicy(
            outage_min_minutes=self.outage_minutes_for(symbol) if symbol else self.outage_min_minutes,
            price_jump_threshold=self.price_jump_threshold,
            max_quarantined_rows=self.max_quarantined_rows,
            failure_rows=self.failure_rows,
            max_no_trade_share=self.max_no_trade_share,
        )


_CRON_FIELD_RE = re.compile(r"^[0-9*/,\-A-Za-z?]+$")


class AutomationSettings(_Strict):
    """The nightly schedules and the gap backfill sensor (``automation:`` in the config file)."""

    running: bool = Field(
        default=False,
        description="True: the schedules and sensors start with the daemon (DefaultScheduleStatus / "
        "DefaultSensorStatus RUNNING); false: they are defined but stopped until started in the UI or "
        "with `dagster schedule start` / `dagster sensor start`. A toggle in the UI overrides this.",
    )
    nightly_cron: str = Field(
        default="15 0 * * *",
        description="When (UTC) the nightly schedules materialise yesterday, raw through served: "
        "shortly after midnight plus a safety delay for the venues to close the day.",
    )
    lookback_days: int = Field(
        default=30,
        ge=1,
        le=3660,
        description="How many closed days back the gap sensor re-fetches days whose validated data has "
        "an outage gap (and looks for missing or failed days when history_backfill is false).",
    )
    history_backfill: bool = Field(
        default=True,
        description="True: missing or failed days anywhere from start_date on are backfilled too (a new "
        "symbol, an earlier start_date); false: only inside the lookback window.",
    )
    backfill_order: Literal["newest_first", "oldest_first"] = "newest_first"
    sensor_interval_s: int = Field(
        default=120, ge=1, description="Minimum seconds between two evaluations of the gap sensor."
    )
    nightly_grace_minutes: int = Field(
        default=120,
        ge=0,
        description="Minutes after midnight UTC during which the gap sensor leaves the day that just "
        "closed to the nightly schedule.",
    )
    max_days_per_run: int = Field(
        default=31, ge=1, le=366, description="Days per backfill run (one run spans days x symbols)."
    )
    max_runs_per_tick: int = Field(default=6, ge=1, description="Runs one sensor evaluation may request.")
    max_runs_in_flight_per_venue: int = Field(
        default=1,
        ge=1,
        description="The sensor requests nothing for a venue while this many of its runs are queued or "
        "running (the venue pool runs them one at a time anyway).",
    )
    retry_base_minutes: float = Field(
        default=60.0,
        gt=0,
        description="Backoff before re-requesting a day the sensor already requested: base x 2^(tries-1).",
    )
    max_tries: int = Field(
        default=6,
        ge=1,
        description="After this many requests for one day the sensor gives up on it and records "
        "'still missing after N tries' (an observation on the raw partition and the sensor log).",
    )

    @field_validator("nightly_cron")
    @classmethod
    def _five_fields(cls, value: str) -> str:
        fields = value.split()
        if len(fields) != 5 or not all(_CRON_FIELD_RE.match(f) for f in fields):
            raise ValueError(f"expected a cron string with 5 fields like '15 0 * * *', got {value!r}")
        return value


_REDIS_URL_RE = re.compile(r"^rediss?://[^\s]+$")


class LiveEventsSettings(_Strict):
    """Where the live service publishes new-candle events (``live.events``)."""

    backend: Literal["memory", "redis"] = Field(
        default="memory",
        description="memory: in-process events, Server-Sent Events only; redis: also one Redis stream "
        "per series.",
    )
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", pattern=_REDIS_URL_RE.pattern)
    stream_prefix: str = Field(
        default="marketdata:",
        pattern=r"^[A-Za-z0-9:_.-]{1,64}$",
        description="Stream key prefix: <prefix><exchange>:<SYMBOL>:<timeframe>.",
    )
    stream_maxlen: int = Field(default=10_000, ge=10, description="Approximate cap of each stream.")


class LiveSettings(_Strict):
    """``marketdata serve``: rolling buffers, the HTTP API and new-candle events (``live:``)."""

    venues: dict[Literal[CANDLE_VENUES], list[Symbol]] | None = Field(
        default=None,
        description="Symbols per venue to serve live; None = every configured venue and symbol. A venue "
        "must be configured under venues: (its base URL, pacing and budget are used).",
    )
    buffer_length: int = Field(
        default=100, ge=1, le=100_000, description="Closed candles kept per timeframe."
    )
    poll_delay_s: float = Field(
        default=2.0, ge=0, le=59, description="Seconds after a minute closes before it is fetched."
    )
    history_days: int = Field(
        default=1,
        ge=0,
        le=31,
        description="Whole UTC days before today fetched from the venue at start for what is not served.",
    )
    max_retries: int = Field(
        default=2, ge=0, le=20, description="Retries per poll request (the next poll tries again anyway)."
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8800, ge=0, le=65535)
    events: LiveEventsSettings = Field(default_factory=LiveEventsSettings)


class Settings(_Strict):
    environment: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    synthetic: bool = Field(
        default=False,
        description="True when the venues are the local simulator: the data root is marked synthetic.",
    )
    storage: StorageSettings
    venues: dict[Literal[CANDLE_VENUES], VenueSettings] = Field(min_length=1)
    dvol: DvolSettings | None = None
    quality: QualitySettings = Field(default_factory=QualitySettings)
    automation: AutomationSettings = Field(default_factory=AutomationSettings)
    live: LiveSettings = Field(default_factory=LiveSettings)

    @model_validator(mode="after")
    def _live_venues_configured(self) -> Settings:
        unknown = sorted(set(self.live.venues or {}) - set(self.venues))
        if unknown:
            raise ValueError(
                f"live.venues: {', '.join(unknown)} not configured under venues: "
                f"(configured: {', '.join(self.venues)})"
            )
        return self

    @model_validator(mode="after")
    def _synthetic_needs_overrides(self) -> Settings:
        if self.synthetic:
            real = [name for name, venue in self.venues.items() if venue.base_url is None]
            if self.dvol is not None and self.dvol.base_url is None:
                real.append("dvol")
            if real:
                raise ValueError(
                    "synthetic settings must point every venue at the simulator (base_url); "
                    f"missing for: {', '.join(real)}"
                )
        return self


@dataclass(frozen=True)
class LoadedSettings:
    """Settings plus where they came from, with the storage root resolved."""

    settings: Settings
    path: Path
    storage_root: str

    @property
    def environment(self) -> str:
        return self.settings.environment

    @property
    def venues(self) -> dict[str, VenueSettings]:
        return dict(self.settings.venues)

    @property
    def quality(self) -> QualitySettings:
        return self.settings.quality

    @property
    def automation(self) -> AutomationSettings:
        return self.settings.automation

    @property
    def dvol(self) -> DvolSettings | None:
        return self.settings.dvol

    @property
    def synthetic(self) -> bool:
        return self.settings.synthetic

    @property
    def live(self) -> LiveSettings:
        return self.settings.live

    @cached_property
    def live_universe(self) -> list[tuple[str, str]]:
        """(venue, unified symbol) pairs the live service serves: ``live.venues``, else everything."""
        chosen = self.settings.live.venues
        if chosen is None:
            return self.universe
        return [(venue, symbol) for venue, symbols in chosen.items() for symbol in symbols]

    @cached_property
    def universe(self) -> list[tuple[str, str]]:
        """(venue, unified symbol) pairs, in config order."""
        return [(venue, symbol) for venue, cfg in self.settings.venues.items() for symbol in cfg.symbols]


def config_path(env: str | None = None) -> Path:
    """The config file the environment selects."""
    explicit = os.environ.get("MARKETDATA_CONFIG")
    if explicit and env is None:
        return Path(explicit).expanduser().resolve()
    name = env or os.environ.get("MARKETDATA_ENV", "local")
    if not re.match(r"^[a-z][a-z0-9_-]*$", name):
        raise SettingsError(f"MARKETDATA_ENV={name!r} is not a valid environment name (e.g. local, demo)")
    return CONFIG_DIR / f"{name}.yaml"


def load_settings(path: str | Path | None = None, *, environ: dict[str, str] | None = None) -> LoadedSettings:
    """Read and validate a config file (default: the one the environment selects)."""
    env = os.environ if environ is None else environ
    if path is not None and "\x00" in str(path):
        raise SettingsError(f"{str(path)!r}: a settings file path cannot contain a NUL byte")
    file = Path(path).expanduser().resolve() if path is not None else config_path()
    if not file.is_file():
        available = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))) or "none"
        raise SettingsError(f"{file}: config file not found (environments in {CONFIG_DIR}: {available})")
    try:
        raw = yaml.load(file.read_text(), Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise SettingsError(f"{file}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise SettingsError(f"{file}: expected a mapping at the top level, got {type(raw).__name__}")
    data = _interpolate(raw, env, file, ())
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise SettingsError(_format_errors(file, exc)) from None
    override = env.get("MARKETDATA_ROOT")
    root = override or settings.storage.root
    resolved = resolve_root(root, file.parent)
    if not _URI_SCHEME_RE.match(resolved) or resolved.startswith("file://"):
        from marketdata_assets.storage.root import StorageRootError, check_local_root

        setting = "MARKETDATA_ROOT" if override else f"{file}: storage.root"
        try:
            check_local_root(resolved.removeprefix("file://"), setting)
        except StorageRootError as exc:
            raise SettingsError(str(exc)) from None
    return LoadedSettings(settings=settings, path=file, storage_root=resolved)


class _Loader(yaml.SafeLoader):
    """SafeLoader that leaves dates as strings, so pydantic validates them and names the key."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def resolve_root(root: str, base_dir: Path) -> str:
    """A URI stays as it is; a relative path is taken relative to ``base_dir`` and made absolute."""
    if _URI_SCHEME_RE.match(root):
        return root
    path = Path(root).expanduser()
    if not path.is_absolute():
        path = base_dir / path
    return str(path.resolve())


def _interpolate(value: Any, env: dict[str, str] | os._Environ, file: Path, where: tuple[str, ...]) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, env, file, (*where, str(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env, file, (*where, f"[{i}]")) for i, v in enumerate(value)]
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            key = ".".join(where).replace(".[", "[")
            raise SettingsError(f"{file}: {key}: environment variable {name} is not set and has no default")

        return _ENV_RE.sub(substitute, value)
    return value


def _format_errors(file: Path, exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        key = ".".join(str(p) for p in error["loc"]) or "(top level)"
        key = re.sub(r"\.(\d+)(?=\.|$)", r"[\1]", key)
        if error["type"] == "extra_forbidden":
            message = "unknown key (not a setting; check the spelling)"
        elif error["type"] == "missing":
            message = "required key is missing"
        else:
            message = error["msg"].removeprefix("Value error, ")
            if "input" in error and error["type"] not in ("value_error",):
                message += f" (got {error['input']!r})"
        lines.append(f"{key}: {message}")
    head = f"{file}: " if len(lines) == 1 else f"{file}: {len(lines)} problems:\n  "
    return head + "\n  ".join(lines)
