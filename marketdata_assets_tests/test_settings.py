"""Settings: every shipped config loads; a bad file gets one error naming the file, key and expectation."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from marketdata_assets.settings import CONFIG_DIR, SettingsError, config_path, load_settings

GOOD = """
environment: test
storage:
  root: data
venues:
  binance:
    symbols: [BTC/USDT, ETH/USDT]
    start_date: 2024-01-01
dvol:
  currencies: [BTC]
  start_date: 2024-01-01
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIG_DIR.glob("*.yaml")))
def test_shipped_configs_load(name: str) -> None:
    loaded = load_settings(CONFIG_DIR / name, environ={})
    assert loaded.universe, name
    assert {v for v, _ in loaded.universe} <= {"binance", "bybit", "okx"}


def test_environment_selects_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MARKETDATA_CONFIG", raising=False)
    monkeypatch.setenv("MARKETDATA_ENV", "demo")
    assert config_path() == CONFIG_DIR / "demo.yaml"
    monkeypatch.setenv("MARKETDATA_CONFIG", "/tmp/x.yaml")
    assert config_path() == Path("/tmp/x.yaml")
    monkeypatch.delenv("MARKETDATA_CONFIG")
    monkeypatch.setenv("MARKETDATA_ENV", "../etc")
    with pytest.raises(SettingsError, match="not a valid environment name"):
        config_path()


def test_good_file_resolves_root_relative_to_file(tmp_path: Path) -> None:
    loaded = load_settings(write(tmp_path, GOOD), environ={})
    assert loaded.storage_root == str(tmp_path / "data")
    assert loaded.venues["binance"].symbol_keys == ["BTCUSDT", "ETHUSDT"]
    assert loaded.venues["binance"].symbol_for_key("ETHUSDT") == "ETH/USDT"
    assert loaded.universe == [("binance", "BTC/USDT"), ("binance", "ETH/USDT")]


def test_root_override_and_uri_kept(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    assert load_settings(path, environ={"MARKETDATA_ROOT": "s3://bucket/p"}).storage_root == "s3://bucket/p"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("  binance:\n", "  binance:\n    symbol: [BTC/USDT]\n", r"venues\.binance\.symbol: unknown key"),
        ("[BTC/USDT, ETH/USDT]", "[BTC/USDT, BTCUSDT]", r"venues\.binance\.symbols\[1\]: expected a unified"),
        ("[BTC/USDT, ETH/USDT]", "[BTC/USDT, BTC/USDT]", r"symbols listed twice: BTCUSDT"),
        ("start_date: 2024-01-01\ndvol", "start_date: 2024-13-01\ndvol", r"venues\.binance\.start_date"),
        ("  binance:", "  kraken:", r"venues\.kraken"),
        ("[BTC]", "[SOL]", r"dvol\.currencies\[0\]"),
        (
            "[BTC]\n  start_date: 2024-01-01",
            "[BTC]\n  start_date: 2020-01-01",
            r"dvol\.start_date: DVOL starts on 2021-03-24",
        ),
        ("root: data", "root: ftp://host/x", r"storage\.root: unsupported storage scheme 'ftp'"),
        ("environment: test\n", "", r"environment: required key is missing"),
        ("[BTC]\n", "[BTC]\n  base_url: ftp://x\n", r"dvol\.base_url: expected an http\(s\) URL"),
        ("environment: test\n", "environment: test\nextra: 1\n", r"extra: unknown key"),
    ],
)
def test_bad_files_name_file_key_and_expectation(tmp_path: Path, old: str, new: str, expected: str) -> None:
    text = textwrap.dedent(GOOD)
    assert old in text, old
    path = write(tmp_path, text.replace(old, new, 1))
    with pytest.raises(SettingsError, match=expected) as info:
        load_settings(path, environ={})
    assert str(path) in str(info.value)


def test_env_interpolation(tmp_path: Path) -> None:
    text = GOOD.replace(
        "    start_date: 2024-01-01\ndvol",
        "    start_date: 2024-01-01\n    base_url: ${SIM:-http://127.0.0.1:1}/binance\ndvol",
    )
    path = write(tmp_path, text)
    assert load_settings(path, environ={}).venues["binance"].base_url == "http://127.0.0.1:1/binance"
    assert (
        load_settings(path, environ={"SIM": "http://h:2"}).venues["binance"].base_url == "http://h:2/binance"
    )
    path.write_text(path.read_text().replace("${SIM:-http://127.0.0.1:1}", "${SIM}"))
    with pytest.raises(
        SettingsError, match=r"venues\.binance\.base_url: environment variable SIM is not set"
    ):
        load_settings(path, environ={})


def test_synthetic_settings_must_point_at_simulator(tmp_path: Path) -> None:
    path = write(tmp_path, "synthetic: true\n" + textwrap.dedent(GOOD))
    with pytest.raises(SettingsError, match="missing for: binance, dvol"):
        load_settings(path, environ={})


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="config file not found"):
        load_settings(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("venues: [unclosed\n")
    with pytest.raises(SettingsError, match="not valid YAML"):
        load_settings(bad)
    bad.write_text("- a list\n")
    with pytest.raises(SettingsError, match="expected a mapping"):
        load_settings(bad)


def test_demo_root_is_not_the_real_root() -> None:
    local = load_settings(CONFIG_DIR / "local.yaml", environ={})
    demo = load_settings(CONFIG_DIR / "demo.yaml", environ={})
    assert demo.synthetic and not local.synthetic
    assert not demo.storage_root.startswith(local.storage_root)


@pytest.mark.parametrize("where", ["file", "env"])
@pytest.mark.parametrize("kind", ["slash", "home", "file"])
def test_a_root_that_cannot_hold_the_data_fails_at_load_naming_setting_and_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str, kind: str
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    (tmp_path / "a-file").write_text("x")
    root, problem = {
        "slash": ("/", "/ is a filesystem root"),
        "home": (str(tmp_path / "home"), f"{tmp_path / 'home'} is the home directory itself"),
        "file": (str(tmp_path / "a-file"), f"{tmp_path / 'a-file'} exists and is not a directory"),
    }[kind]
    if where == "file":
        path, environ, setting = (
            write(tmp_path, GOOD.replace("root: data", f"root: {root}")),
            {},
            "storage.root",
        )
    else:
        path, environ, setting = write(tmp_path, GOOD), {"MARKETDATA_ROOT": root}, "MARKETDATA_ROOT"
    with pytest.raises(SettingsError) as raised:
        load_settings(path, environ=environ)
    assert f"{setting} = {problem}" in str(raised.value)
