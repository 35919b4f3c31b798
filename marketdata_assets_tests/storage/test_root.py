"""Storage roots: URI parsing and path validation (no symbol or exchange string reaches a path unchecked)."""

from __future__ import annotations

import re
from datetime import date, datetime

import pyarrow.fs as pafs
import pytest

from marketdata_assets.storage.objectstore import SnapshotReads
from marketdata_assets.storage.raw import RAW_CANDLES, day_file_path, write_raw_candles
from marketdata_assets.storage.root import (
    InvalidNameError,
    StorageRoot,
    StorageRootError,
    hive_segment,
    month_segment,
)
from marketdata_assets.storage.served import CANDLES, write_served_days
from marketdata_assets_tests.storage.helpers import minute_candles

BAD_NAMES = [
    "../etc",
    "..",
    ".",
    "BTC/USDT",
    "/abs",
    "a,b",
    "a|b",
    "BTC USDT",
    "",
    "a=b",
    "a.b",
    "a\\b",
    "é",
    "x\n",
]


def test_plain_path_and_file_uri_give_the_same_local_root(tmp_path):
    plain = StorageRoot.from_uri(tmp_path)
    uri = StorageRoot.from_uri(f"file://{tmp_path}")
    assert plain.base == uri.base == str(tmp_path.resolve())
    assert plain.local and uri.local
    assert isinstance(plain.fs, pafs.LocalFileSystem)


def test_relative_path_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = StorageRoot.from_uri("data/demo")
    assert root.base == str(tmp_path.resolve() / "data" / "demo")


def test_s3_root_takes_endpoint_and_credentials_from_the_environment(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "minio")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "minio123")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    root = StorageRoot.from_uri("s3://market-data/prod/")
    # The S3 filesystem, wrapped so that every read sees one version of an object.
    assert isinstance(root.fs, pafs.PyFileSystem) and isinstance(root.fs.handler, SnapshotReads)
    s3 = root.fs.handler.inner
    assert isinstance(s3, pafs.S3FileSystem)
    assert root.base == "market-data/prod"
    assert not root.local
    options = s3.__reduce__()[1][0]  # the constructor arguments pyarrow pickles
    assert options["endpoint_override"] == "127.0.0.1:9000"
    assert options["scheme"] == "http"
    assert options["access_key"] == "minio"
    assert options["region"] == "us-east-1"
    path = root.path("candles", hive_segment("exchange", "binance"))
    assert path == "market-data/prod/candles/exchange=binance"
    assert root.display(path) == "s3://market-data/prod/candles/exchange=binance"


@pytest.mark.parametrize("uri", ["ftp://host/x", "s3://", "s3://bucket/../x", "   "])
def test_unusable_roots_are_rejected(uri):
    with pytest.raises(StorageRootError):
        StorageRoot.from_uri(uri)


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_symbol_or_exchange_never_reaches_a_path(tmp_path, name):
    root = StorageRoot.from_uri(tmp_path)
    day = date(2024, 1, 1)
    with pytest.raises(InvalidNameError):
        day_file_path(root, RAW_CANDLES, {"exchange": "binance", "symbol": name}, day)
    with pytest.raises(InvalidNameError):
        day_file_path(root, RAW_CANDLES, {"exchange": name, "symbol": "BTCUSDT"}, day)
    with pytest.raises(InvalidNameError):
        write_raw_candles(root, name, "BTCUSDT", day, minute_candles(day))
    with pytest.raises(InvalidNameError):
        write_served_days(root, "1m", "binance", name, {day: minute_candles(day)})
    with pytest.raises(InvalidNameError):
        write_served_days(root, name, "binance", "BTCUSDT", {day: minute_candles(day)})
    assert list(tmp_path.iterdir()) == []  # nothing was written anywhere


def test_days_must_be_date_objects_and_months_real(tmp_path):
    root = StorageRoot.from_uri(tmp_path)
    keys = {"exchange": "binance", "symbol": "BTCUSDT"}
    with pytest.raises(InvalidNameError):
        day_file_path(root, RAW_CANDLES, keys, "2024-01-01")  # type: ignore[arg-type]
    with pytest.raises(InvalidNameError):
        day_file_path(root, RAW_CANDLES, keys, datetime(2024, 1, 1))
    for month in ["2024-13", "2024-1", "../2024-01", "2024-01-01"]:
        with pytest.raises(InvalidNameError):
            month_segment(month)
    assert day_file_path(root, RAW_CANDLES, keys, date(2024, 1, 1)).endswith(
        "raw/ohlcv_1m/exchange=binance/symbol=BTCUSDT/date=2024-01-01/data.parquet"
    )


def test_partition_keys_must_match_the_dataset(tmp_path):
    root = StorageRoot.from_uri(tmp_path)
    with pytest.raises(InvalidNameError):
        CANDLES.month_path(root, {"exchange": "binance", "symbol": "BTCUSDT"}, "2024-01")
    with pytest.raises(InvalidNameError):
        CANDLES.month_path(root, {"timeframe": "1m", "exchange": "binance", "venue": "x"}, "2024-01")


def test_paths_outside_the_root_are_refused(tmp_path):
    root = StorageRoot.from_uri(tmp_path / "root")
    with pytest.raises(InvalidNameError):
        root.path("..", "elsewhere")
    with pytest.raises(InvalidNameError):
        root.check_inside(str(tmp_path / "rootless" / "x"))  # a sibling sharing the prefix
    with pytest.raises(InvalidNameError):
        root.check_inside(str(tmp_path / "root" / ".." / "x"))
    assert root.check_inside(str(tmp_path / "root" / "a")) == str(tmp_path.resolve() / "root" / "a")


def test_claim_records_the_kind_of_data_and_refuses_to_mix(tmp_path):
    root = StorageRoot.from_uri(tmp_path)
    assert root.read_claim() is None
    root.claim(synthetic=True, environment="demo")
    root.claim(synthetic=True, environment="demo")  # idempotent
    assert root.read_claim() == {"environment": "demo", "synthetic": True}
    with pytest.raises(StorageRootError, match="synthetic"):
        root.claim(synthetic=False, environment="local")
    assert [p.name for p in tmp_path.iterdir()] == ["_root.json"]


@pytest.mark.parametrize("kind", ["slash", "home", "file", "file-uri"])
def test_a_root_that_cannot_hold_the_data_is_refused_naming_the_path(tmp_path, monkeypatch, kind):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    a_file = tmp_path / "not-a-dir"
    a_file.write_text("x")
    uri, expected = {
        "slash": ("/", "/ is a filesystem root"),
        "home": ("~", f"{tmp_path / 'home'}) is the home directory itself"),
        "file": (str(a_file), f"{a_file} exists and is not a directory"),
        "file-uri": (f"file://{a_file}", f"{a_file} exists and is not a directory"),
    }[kind]
    with pytest.raises(StorageRootError, match="storage root = .*" + re.escape(expected)):
        StorageRoot.from_uri(uri)


def test_a_root_that_does_not_exist_yet_is_fine(tmp_path):
    assert StorageRoot.from_uri(tmp_path / "new" / "data").base == str(tmp_path / "new" / "data")
