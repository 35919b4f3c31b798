"""Fault injection: what can go wrong, where, and how it is written down.

Spec format (CLI ``--fault``, ``POST /__sim/faults``, :meth:`FaultBook.add`)::

    VENUE:KIND[:key=value[,key=value...]]

``VENUE`` is ``binance``, ``bybit``, ``okx``, ``deribit`` or ``*`` (every venue). Keys every kind
accepts:

* ``symbol=BTC/USDT`` (Deribit: ``symbol=BTC``): only requests for that instrument;
* ``endpoint=NAME``: only that endpoint -- the last segment of the native path (``klines``,
  ``exchangeInfo``, ``kline``, ``instruments-info``, ``candles``, ``history-candles``,
  ``instruments``, ``get_volatility_index_data``, ``time``) or ``ohlcv`` for any candle/DVOL endpoint;
* ``rate=0.2``: a fraction of matching requests (decided by a generator seeded from the simulator
  seed and the fault's id: the same request sequence gives the same decisions);
* ``count=3``: only the next N matching requests (with ``rate``: the next N that fire);
* ``start=2024-01-02T03:00,end=2024-01-02T05:00`` (UTC; or epoch ms) or ``day=2024-01-02``: a time
  window. For request faults (http, slow, drop, truncate, html, maintenance) it is the
  simulator's clock ("while now is in the window"); for data faults (outage, duplicates,
  out_of_order, invalid, revised) it is candle open time.

Kinds:

==================  =====================================================================================
``http500`` ...     HTTP 5xx with an empty-ish JSON body; ``http:status=502`` for any status;
                    ``retry_after=TEXT`` adds ``Retry-After: TEXT`` verbatim (hostile values too:
                    ``-5``, ``abc``, ``inf``, ``1e9``)
``slow``            answer after ``delay=SECONDS`` (default 30: past a client timeout)
``drop``            close the connection without any response
``truncate``        send the headers and ``keep=0.5`` of the body, then close
``html``            an HTML error page instead of JSON (``status=502`` default)
``maintenance``     the venue's own maintenance answer (Binance 503 -1001, Bybit 503 10016, OKX 503
                    50001, Deribit 503 11051 ``system_maintenance``)
``duplicates``      ``rows=1`` extra rows beyond the requested window edge (the side a forward paginator
                    comes from), so consecutive pages overlap; ``mode=inside`` repeats the page's oldest
                    ``rows`` rows inside the page instead (survives ccxt's ``since`` filter)
``out_of_order``    rows of a page shuffled (alias ``shuffle``)
``invalid``         ``rows=1`` rows per page made invalid: ``what=high_lt_low`` (default),
                    ``negative_volume`` or ``nan`` (the string ``"NaN"`` in a price; Deribit: ``null``)
``revised``         candles already served once come back with ``close * factor`` (``factor=1.001``)
``outage``          no candles at all in the window (a data gap, not an HTTP error); ``rate=0.05``
                    instead gives each UTC day that probability of a 5-180 minute outage
==================  =====================================================================================

Examples: ``binance:http500:rate=0.2``, ``okx:duplicates``, ``bybit:outage:start=2024-01-02T03:00,end=2024-01-02T05:00``,
``*:slow:delay=15,count=2``, ``deribit:invalid:what=nan,rows=3``, ``binance:revised:symbol=BTC/USDT,day=2024-01-02``.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from marketdata_assets.frames import DAY_MS, MINUTE_MS
from marketdata_assets.universe import VENUES

from .config import parse_time_ms
from .market import derive_seed, rng_for

REQUEST_KINDS = ("http_error", "slow", "drop", "truncate", "html", "maintenance")
DATA_KINDS = ("duplicates", "out_of_order", "invalid", "revised", "outage")
KINDS = REQUEST_KINDS + DATA_KINDS
_KIND_ALIASES = {
    "shuffle": "out_of_order",
    "out-of-order": "out_of_order",
    "http": "http_error",
    "dup": "duplicates",
}
INVALID_WHATS = ("high_lt_low", "negative_volume", "nan")
OHLCV_ENDPOINTS = ("klines", "kline", "candles", "history-candles", "get_volatility_index_data")


@dataclass
class Fault:
    """One scripted fault; see the module docstring for the meaning of each field."""

    kind: str
    venue: str = "*"
    symbol: str | None = None
    endpoint: str | None = None
    rate: float | None = None
    count: int | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    status: int | None = None  # http: 500, html: 502 unless given
    retry_after: str | None = None  # http: a Retry-After header sent as given
    delay_s: float = 30.0
    keep: float = 0.5
    rows: int = 1
    mode: str = "edge"
    what: str = "high_lt_low"
    factor: float = 1.001
    id: int = 0
    spec: str = ""
    fired: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        self.kind = _KIND_ALIASES.get(self.kind, self.kind)
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        self.venue = (self.venue or "*").lower()
        if self.venue != "*" and self.venue not in VENUES:
            raise ValueError(f"unknown venue {self.venue!r} in fault; expected *, {', '.join(VENUES)}")
        if self.symbol:
            self.symbol = self.symbol.upper()
        if self.rate is not None and not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"fault rate must be within [0, 1], got {self.rate}")
        if self.count is not None and self.count < 0:
            raise ValueError("fault count must be >= 0")
        if self.kind == "invalid" and self.what not in INVALID_WHATS:
            raise ValueError(f"invalid:what must be one of {', '.join(INVALID_WHATS)}, got {self.what!r}")
        if self.kind == "duplicates" and self.mode not in ("edge", "inside"):
            raise ValueError(f"duplicates:mode must be edge or inside, got {self.mode!r}")
        if self.status is None:
            self.status = 502 if self.kind == "html" else 500
        if self.kind in ("http_error", "html") and not 400 <= self.status <= 599:
            raise ValueError(f"http fault status must be 4xx/5xx, got {self.status}")
        if self.rows < 1:
            raise ValueError("fault rows must be >= 1")
        if not 0.0 <= self.keep < 1.0:
            raise ValueError("truncate:keep must be within [0, 1)")
        if self.start_ms is not None and self.end_ms is not None and self.end_ms <= self.start_ms:
            raise ValueError("fault window end must be after its start")
        if not self.spec:
            self.spec = self.describe()

    @property
    def is_request_fault(self) -> bool:
        return self.kind in REQUEST_KINDS

    def describe(self) -> str:
        params = []
        for key, default in (("symbol", None), ("endpoint", None), ("rate", None), ("count", None)):
            value = getattr(self, key)
            if value != default:
                params.append(f"{key}={value}")
        if self.start_ms is not None:
            params.append(f"start={self.start_ms}")
        if self.end_ms is not None:
            params.append(f"end={self.end_ms}")
        kind = f"http{self.status}" if self.kind == "http_error" else self.kind
        return f"{self.venue}:{kind}" + (":" + ",".join(params) if params else "")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def in_window(self, ms: int) -> bool:
        return (self.start_ms is None or ms >= self.start_ms) and (self.end_ms is None or ms < self.end_ms)

    def overlaps(self, lo_ms: int, hi_ms: int) -> bool:
        """Does ``[lo_ms, hi_ms]`` (inclusive) meet the fault's data window?"""
        return (self.start_ms is None or hi_ms >= self.start_ms) and (
            self.end_ms is None or lo_ms < self.end_ms
        )

    def matches(self, venue: str, endpoint: str | None, symbol: str | None) -> bool:
        if self.venue not in ("*", venue):
            return False
        if self.symbol and self.symbol != (symbol or "").upper():
            return False
        if self.endpoint:
            if self.endpoint == "ohlcv":
                return endpoint in OHLCV_ENDPOINTS
            return self.endpoint == endpoint
        return True


def _number(key: str, value: str, cast: type) -> Any:
    try:
        return cast(value)
    except ValueError:
        raise ValueError(f"fault parameter {key}={value!r} is not a {cast.__name__}") from None


def parse_fault(spec: str) -> Fault:
    """``VENUE:KIND[:key=value,...]`` -> :class:`Fault` (see the module docstring)."""
    text = spec.strip()
    parts = text.split(":", 2)
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise ValueError(f"fault spec must look like VENUE:KIND[:key=value,...], got {spec!r}")
    venue, kind = parts[0].strip().lower(), parts[1].strip().lower()
    kwargs: dict[str, Any] = {"venue": venue, "spec": text}
    if kind.startswith("http") and kind[4:].isdigit():
        kwargs["status"] = int(kind[4:])
        kind = "http_error"
    kwargs["kind"] = _KIND_ALIASES.get(kind, kind)
    if len(parts) == 3 and parts[2].strip():
        for item in parts[2].split(","):
            key, sep, value = item.partition("=")
            key, value = key.strip().lower(), value.strip()
            if not sep or not key:
                raise ValueError(f"fault parameter {item!r} in {spec!r} is not key=value")
            if key in ("symbol", "endpoint", "mode", "what", "retry_after"):
                kwargs[key] = value
            elif key in ("rate", "factor", "keep"):
                kwargs[key] = _number(key, value, float)
            elif key in ("delay", "delay_s"):
                kwargs["delay_s"] = _number(key, value, float)
            elif key in ("count", "rows", "status"):
                kwargs[key] = _number(key, value, int)
            elif key == "start":
                kwargs["start_ms"] = parse_time_ms(value)
            elif key == "end":
                kwargs["end_ms"] = parse_time_ms(value)
            elif key == "day":
                kwargs["start_ms"] = parse_time_ms(value)
                kwargs["end_ms"] = kwargs["start_ms"] + DAY_MS
            else:
                raise ValueError(f"unknown fault parameter {key!r} in {spec!r}")
    return Fault(**kwargs)


def fault_from_json(payload: Any) -> Fault:
    """A spec string, or an object with :class:`Fault` field names (times as ISO text or ms)."""
    if isinstance(payload, str):
        return parse_fault(payload)
    if not isinstance(payload, dict):
        raise ValueError(f"a fault is a spec string or an object, got {type(payload).__name__}")
    if "spec" in payload and len(payload) == 1:
        return parse_fault(str(payload["spec"]))
    data = dict(payload)
    for key in ("start", "end"):
        if key in data:
            data[f"{key}_ms"] = parse_time_ms(data.pop(key))
    if "day" in data:
        data["start_ms"] = parse_time_ms(data.pop("day"))
        data["end_ms"] = data["start_ms"] + DAY_MS
    if "delay" in data:
        data["delay_s"] = data.pop("delay")
    allowed = set(Fault.__dataclass_fields__) - {"id", "fired"}
    unknown = set(data) - allowed
    if unknown:
        raise ValueError(f"unknown fault field(s): {', '.join(sorted(unknown))}")
    return Fault(**data)


class FaultBook:
    """The active faults of a simulator, with deterministic firing decisions."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._faults: list[Fault] = []
        self._rngs: dict[int, np.random.Generator] = {}
        self._next_id = 1
        self._lock = threading.RLock()
        self._served: dict[tuple[int, str, str], set[int]] = {}

    def add(self, fault: Fault | str | dict[str, Any]) -> Fault:
        parsed = fault if isinstance(fault, Fault) else fault_from_json(fault)
        with self._lock:
            parsed.id = self._next_id
            self._next_id += 1
            self._faults.append(parsed)
            self._rngs[parsed.id] = rng_for(self.seed, "fault", parsed.id, parsed.spec)
        return parsed

    def remove(self, fault_id: int) -> bool:
        with self._lock:
            before = len(self._faults)
            self._faults = [f for f in self._faults if f.id != fault_id]
            self._rngs.pop(fault_id, None)
            return len(self._faults) != before

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self._rngs.clear()
            self._served.clear()

    def list(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def rng(self, fault: Fault) -> np.random.Generator:
        with self._lock:
            return self._rngs.setdefault(fault.id, rng_for(self.seed, "fault", fault.id, fault.spec))

    def fire(self, fault: Fault) -> bool:
        """Decide (and record) whether a matching request is hit; consumes the fault's budget."""
        with self._lock:
            if fault.count is not None and fault.fired >= fault.count:
                return False
            if fault.rate is not None and self.rng(fault).random() >= fault.rate:
                return False
            fault.fired += 1
            return True

    def request_faults(self, venue: str, endpoint: str, symbol: str | None, now_ms: int) -> list[Fault]:
        """Request faults that hit this request, in the order they were added (budget consumed)."""
        hits = []
        for fault in self.list():
            matching = (
                fault.is_request_fault and fault.matches(venue, endpoint, symbol) and fault.in_window(now_ms)
            )
            if matching and self.fire(fault):
                hits.append(fault)
        return hits

    def data_faults(self, venue: str, endpoint: str, symbol: str | None, kind: str) -> list[Fault]:
        """Data faults of ``kind`` scoped to this request (firing is decided by the caller)."""
        return [f for f in self.list() if f.kind == kind and f.matches(venue, endpoint, symbol)]

    def outage_windows(self, venue: str, symbol: str, day: int) -> list[tuple[int, int]]:
        """Outage windows of one UTC day from outage faults (fixed windows and daily rates)."""
        windows = []
        lo, hi = day * DAY_MS, (day + 1) * DAY_MS
        for fault in self.list():
            if fault.kind != "outage" or not fault.matches(venue, None, symbol):
                continue
            if fault.rate is not None:
                if fault.overlaps(lo, hi - 1):
                    windows.extend(daily_outage(self.seed, fault, venue, day))
                continue
            start = lo if fault.start_ms is None else max(lo, fault.start_ms)
            end = hi if fault.end_ms is None else min(hi, fault.end_ms)
            if start < end:
                windows.append((start, end))
        return windows

    def served_before(self, fault: Fault, venue: str, symbol: str, timestamps: np.ndarray) -> np.ndarray:
        """For ``revised``: which of these candles were served before; remembers them all."""
        with self._lock:
            seen = self._served.setdefault((fault.id, venue, symbol), set())
            before = np.fromiter((int(t) in seen for t in timestamps), dtype=bool, count=len(timestamps))
            seen.update(int(t) for t in timestamps)
            return before


def daily_outage(seed: int, fault: Fault, venue: str, day: int) -> list[tuple[int, int]]:
    """The rate-based outage of a day, if the day draws one: 5-180 minutes at a random minute."""
    rng = np.random.Generator(np.random.PCG64(derive_seed(seed, "outage", fault.spec, venue, day)))
    if rng.random() >= (fault.rate or 0.0):
        return []
    minutes = int(rng.integers(5, 181))
    start_minute = int(rng.integers(0, 1440 - minutes + 1))
    start = day * DAY_MS + start_minute * MINUTE_MS
    return [(start, start + minutes * MINUTE_MS)]
