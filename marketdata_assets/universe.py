"""The facts every part of the platform agrees on: which venues exist, DVOL's currencies and first day,
how a partition key is spelled, and which UTC day closed last.

Settings, the simulator, the venue sources, the Dagster definitions, the automation plan and the terminal
all import these from here; nothing else defines them. No Dagster import: the Dagster layer builds its
partition definitions from :data:`DATE`, :data:`SYMBOL` and :data:`CURRENCY`.

Partition keys are two-dimensional (Dagster allows two dimensions at most): a candle venue's assets are
partitioned by UTC day x symbol key, DVOL by UTC day x currency. Dagster orders the dimensions of a
multi-partition key by name, so a candle key reads ``2024-01-01|BTCUSDT`` and a DVOL key
``BTC|2024-01-01``. :func:`partition_key` and :func:`split_partition_key` are the only code that knows it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

CANDLE_VENUES: tuple[str, ...] = ("binance", "bybit", "okx")
"""Venues whose 1-minute spot candles are fetched through ccxt."""

DVOL_VENUE = "deribit"
"""The venue of the DVOL volatility index."""

VENUES: tuple[str, ...] = (*CANDLE_VENUES, DVOL_VENUE)
"""Every venue the platform (and its simulator) speaks to."""

DVOL_CURRENCIES: tuple[str, ...] = ("BTC", "ETH")
"""Deribit publishes DVOL for these currencies only."""

DVOL_FIRST_DAY = date(2021, 3, 24)
"""Deribit publishes DVOL from this UTC day on; earlier days hold nothing to fetch."""

DVOL_TIMEFRAMES: tuple[str, ...] = ("1m", "1h")
"""The timeframes DVOL is served in."""

# Partition dimensions. Their names matter: Dagster sorts the dimensions of a key by name.
DATE = "date"
SYMBOL = "symbol"
CURRENCY = "currency"
KEY_SEPARATOR = "|"

# The run tags Dagster reads a run's partitions from (its documented tag names; pinned against Dagster's
# own constants by marketdata_assets_tests/dagster/test_definitions_snapshot.py).
PARTITION_NAME_TAG = "dagster/partition"
PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"


def instrument_dimension(venue: str) -> str:
    """The name of the second partition dimension of ``venue``'s assets (``symbol`` or ``currency``)."""
    if venue == DVOL_VENUE:
        return CURRENCY
    if venue in CANDLE_VENUES:
        return SYMBOL
    raise ValueError(f"unknown venue {venue!r}; expected one of {', '.join(VENUES)}")


def partition_key(venue: str, instrument_key: str, day: date) -> str:
    """The partition key of one (instrument, UTC day) of ``venue``: ``2024-01-01|BTCUSDT`` for a candle
    venue, ``BTC|2024-01-01`` for DVOL."""
    dims = {DATE: day.isoformat(), instrument_dimension(venue): instrument_key}
    return KEY_SEPARATOR.join(dims[name] for name in sorted(dims))


def split_partition_key(venue: str, key: str) -> tuple[str, date]:
    """(instrument key, day) of a partition key of ``venue``; ValueError naming the key otherwise."""
    other = instrument_dimension(venue)
    parts = str(key).split(KEY_SEPARATOR)
    if len(parts) != 2:
        raise ValueError(f"partition key {key!r} of {venue} is not '<{DATE}>|<{other}>' ordered by name")
    by_name = dict(zip(sorted((DATE, other)), parts, strict=True))
    try:
        day = date.fromisoformat(by_name[DATE])
    except ValueError as exc:
        raise ValueError(f"partition key {key!r} of {venue} has no ISO day: {exc}") from None
    return by_name[other], day


def run_tags(
    venue: str, instruments: list[str] | tuple[str, ...], first: date, last: date, trigger: str
) -> dict[str, str]:
    """The tags that say what a run does, on every run we launch (terminal backfill, schedules, sensor):
    shown in the Runs list and filterable there (``marketdata/venue``, ``marketdata/symbols``,
    ``marketdata/first_day``, ``marketdata/last_day``, ``marketdata/trigger``)."""
    return {
        "marketdata/venue": venue,
        "marketdata/symbols": ",".join(instruments),
        "marketdata/first_day": first.isoformat(),
        "marketdata/last_day": last.isoformat(),
        "marketdata/trigger": trigger,
    }


def latest_closed_day(now: datetime | None = None) -> date:
    """The UTC day that closed most recently before ``now`` (default: the current time)."""
    return ((now or datetime.now(UTC)).astimezone(UTC) - timedelta(days=1)).date()


# Days of one series per run, for backfills from the terminal (cli/backfill.py) and from the UI (the
# assets' BackfillPolicy.multi_run): tens of partitions per run, as Dagster recommends, so a long range
# starts fetching at once and a failure costs at most a month.
MAX_DAYS_PER_RUN = 31
