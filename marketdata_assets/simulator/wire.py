"""Shared pieces of the venue wire formats: replies, number formatting, query parsing."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .core import Simulator
from .limits import Decision


@dataclass
class Reply:
    """One HTTP answer."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    rows: int = 0


def json_reply(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    body = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
    return Reply(status, body, "application/json", dict(headers or {}))


def text_reply(text: str, status: int, content_type: str = "text/plain; charset=utf-8") -> Reply:
    return Reply(status, text.encode(), content_type)


def html_error_page(status: int) -> Reply:
    """What a CDN / reverse proxy in front of an API serves when the upstream fails."""
    reason = {
        500: "Internal Server Error",
        502: "Bad Gateway",
        503: "Service Unavailable",
        504: "Gateway Time-out",
    }.get(status, "Error")
    page = (
        f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    )
    return text_reply(page, status, "text/html")


def fixed(values: np.ndarray, decimals: int) -> list[str]:
    """Numbers as fixed-point text (``"60685.22000000"``); NaN as ``"NaN"``."""
    out = []
    for value in values.tolist():
        out.append("NaN" if math.isnan(value) else f"{value:.{decimals}f}")
    return out


def trimmed(values: np.ndarray, decimals: int) -> list[str]:
    """Numbers as the shortest text at ``decimals`` places (``"26527.2"``, ``"26210"``); NaN as ``"NaN"``."""
    out = []
    for value in values.tolist():
        if math.isnan(value):
            out.append("NaN")
            continue
        text = f"{value:.{decimals}f}"
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        out.append("0" if text in ("-0", "") else text)
    return out


def reorder(rows: list[Any], order: np.ndarray | None) -> list[Any]:
    return rows if order is None else [rows[i] for i in order.tolist()]


class BadParam(ValueError):
    """A request parameter the venue would reject."""


def int_param(query: dict[str, str], name: str, default: int | None = None) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        try:
            as_float = float(raw)
        except ValueError:
            raise BadParam(name) from None
        if not math.isfinite(as_float) or as_float != int(as_float):
            raise BadParam(name) from None
        return int(as_float)


class VenueApi(Protocol):
    """One venue's REST surface."""

    name: str

    def endpoint(self, path: str) -> str | None: ...

    def instrument(self, endpoint: str, query: dict[str, str], sim: Simulator) -> str | None: ...

    def handle(self, endpoint: str, query: dict[str, str], sim: Simulator) -> Reply: ...

    def limit_reply(self, decision: Decision, ip: str, sim: Simulator) -> Reply: ...

    def maintenance_reply(self, sim: Simulator) -> Reply: ...

    def error_reply(self, status: int, sim: Simulator) -> Reply: ...

    def not_found(self, path: str, sim: Simulator) -> Reply: ...

    def decorate(self, reply: Reply, decision: Decision) -> Reply: ...


def first_values(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in pairs:
        out.setdefault(key, value)
    return out


def route(path: str, prefix: str, endpoints: Iterable[str]) -> str | None:
    """The endpoint name of ``path`` when it is ``prefix`` + one of ``endpoints``, else None."""
    if path.startswith(prefix) and path[len(prefix) :] in endpoints:
        return path[len(prefix) :]
    return None


def listed_ids(sim: Simulator, venue: str, venue_id: Callable[[str], str]) -> dict[str, str]:
    """Venue-native id (``BTCUSDT``, ``BTC-USDT``) -> unified symbol, for every symbol the venue lists."""
    return {venue_id(listing.symbol): listing.symbol for listing in sim.listings(venue)}


def listed_instrument(listed: dict[str, str], raw: str | None) -> str | None:
    """The unified symbol a venue-native id names; the id itself when the venue does not list it."""
    raw = (raw or "").upper()
    return listed.get(raw, raw or None)
