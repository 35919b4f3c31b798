"""The live: settings block: defaults, the series it selects, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from marketdata_assets.settings import SettingsError, load_settings

BASE = {
    "environment": "test",
    "storage": {"root": "data"},
    "venues": {"binance": {"symbols": ["BTC/USDT", "ETH/USDT"], "start_date": "2024-01-01"}},
}


def _load(tmp_path: Path, **live: object):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**BASE, **({"live": live} if live else {})}))
    return load_settings(path, environ={})


def test_defaults_serve_every_configured_series_from_memory(tmp_path: Path) -> None:
    settings = _load(tmp_path)
    assert settings.live.buffer_length == 100 and settings.live.events.backend == "memory"
    assert settings.live_universe == [("binance", "BTC/USDT"), ("binance", "ETH/USDT")]
    chosen = _load(tmp_path, venues={"binance": ["ETH/USDT"]})
    assert chosen.live_universe == [("binance", "ETH/USDT")]


@pytest.mark.parametrize(
    ("live", "named"),
    [
        ({"buffer_lenght": 5}, "live.buffer_lenght: unknown key"),
        ({"events": {"backend": "kafka"}}, "live.events.backend"),
        ({"venues": {"okx": ["BTC/USDT"]}}, "live.venues: okx not configured"),
        ({"events": {"stream_prefix": "a*b"}}, "live.events.stream_prefix"),
    ],
)
def test_a_bad_live_key_is_named(tmp_path: Path, live: dict, named: str) -> None:
    with pytest.raises(SettingsError, match=named.replace("*", r"\*")):
        _load(tmp_path, **live)
