"""Replay of the public 1m layouts as they come, recognised from the data, or one clear refusal.

Every file here is generated in a temp dir in the layout its tool documents: Binance archive zips
(data.binance.vision), freqtrade json/feather, QuantConnect LEAN minute trade-bar zips and CSVs,
CSV with a header. The simulator runs on an ephemeral loopback port; rows are read back over HTTP.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import httpx
import pandas as pd
import pytest

from marketdata_assets.simulator import Simulator, SimulatorConfig, SimulatorServer

from .conftest import MakeSimulator
from .test_ccxt_stock import stock_client

MINUTE = 60_000
DAY_2024 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
DAY_2025 = 1_735_689_600_000  # 2025-01-01 00:00 UTC
# (minute of the day, open, high, low, close, volume) as text, with a gap after minute 1
BARS = [
    (0, "42283.58", "42298.62", "42261.02", "42298.61", "35.92724"),
    (1, "42298.62", "42320.00", "42298.61", "42320.00", "21.5"),
    (3, "42320.01", "42335.99", "42290.10", "42301.18", "0"),
]


def bars_ms(day_ms: int) -> list[int]:
    return [day_ms + minute * MINUTE for minute, *_ in BARS]


def expected_rows(day_ms: int) -> list[list[float]]:
    return [[float(day_ms + m * MINUTE), *(float(v) for v in values)] for m, *values in BARS]


def binance_rows(server: SimulatorServer, symbol: str, start_ms: int) -> list[list[float]]:
    """Every row of one day through ``/api/v3/klines``, as floats (ts, o, h, l, c, v)."""
    rows = httpx.get(
        f"{server.venue_base_url('binance')}/api/v3/klines",
        params={"symbol": symbol, "interval": "1m", "startTime": start_ms, "endTime": start_ms + 86_399_999},
        timeout=10,
    ).json()
    return [[float(v) for v in row[:6]] for row in rows]


def write_zip(path: Path, members: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return path


def lean_csv() -> str:
    return "".join(f"{minute * MINUTE},{o},{h},{lo},{c},{v}\n" for minute, o, h, lo, c, v in BARS)


def archive_csv(day_ms: int, unit: int = 1, header: bool = False) -> str:
    """data.binance.vision kline rows; ``unit=1000``: microseconds (spot files since 2025)."""
    lines = []
    if header:  # the futures archives (and some newer ones) carry a header row
        lines.append(
            "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
            "taker_buy_volume,taker_buy_quote_volume,ignore"
        )
    for i, (minute, o, h, lo, c, v) in enumerate(BARS):
        t = (day_ms + minute * MINUTE) * unit
        lines.append(f"{t},{o},{h},{lo},{c},{v},{t + 59_999 * unit},1000.5,{7 + i},1.25,50.5,0")
    return "\n".join(lines) + "\n"


# -- layouts that replay ------------------------------------------------------------------------


def test_lean_minute_zip_and_unzipped_csv(tmp_path: Path, make_simulator: MakeSimulator) -> None:
    """LEAN ``20240101_trade.zip`` and an unzipped ``20240102_..._minute_trade.csv``: day from the name."""
    zipped = write_zip(tmp_path / "20240101_trade.zip", {"20240101_btcusdt_minute_trade.csv": lean_csv()})
    (tmp_path / "unzipped").mkdir()
    unzipped = tmp_path / "unzipped" / "20240102_btcusdt_minute_trade.csv"
    unzipped.write_text(lean_csv())
    server = make_simulator(
        limits_enabled=False, replay=[f"binance:LEAN/USDT={p}" for p in (zipped, unzipped)]
    )
    assert binance_rows(server, "LEANUSDT", DAY_2024) == expected_rows(DAY_2024)
    assert binance_rows(server, "LEANUSDT", DAY_2024 + 86_400_000) == expected_rows(DAY_2024 + 86_400_000)
    assert binance_rows(server, "LEANUSDT", 0) == []  # nothing in 1970


def test_lean_zip_through_a_stock_ccxt_client(
    tmp_path: Path, make_simulator: MakeSimulator, ccxt_lib: ModuleType
) -> None:
    zipped = write_zip(tmp_path / "20240101_trade.zip", {"20240101_ethusdt_minute_trade.csv": lean_csv()})
    server = make_simulator(limits_enabled=False, replay=[f"binance:LEAN/USDT={zipped}"])
    exchange = stock_client(ccxt_lib, server, "binance")
    rows = exchange.fetch_ohlcv("LEAN/USDT", "1m", since=DAY_2024, limit=10)
    assert rows == expected_rows(DAY_2024)


def test_binance_archive_zip_microseconds_and_header(tmp_path: Path, make_simulator: MakeSimulator) -> None:
    """A spot archive zip (ms), a 2025 archive CSV (us), a futures-style archive with a header row."""
    zipped = write_zip(
        tmp_path / "AAAUSDT-1m-2024-01-01.zip", {"AAAUSDT-1m-2024-01-01.csv": archive_csv(DAY_2024)}
    )
    micro = tmp_path / "BBBUSDT-1m-2025-01-01.csv"
    micro.write_text(archive_csv(DAY_2025, unit=1000))
    headed = tmp_path / "CCCUSDT-1m-2024-01-01.csv"
    headed.write_text(archive_csv(DAY_2024, header=True))
    server = make_simulator(
        limits_enabled=False,
        replay=[f"binance:AAA/USDT={zipped}", f"binance:BBB/USDT={micro}", f"binance:CCC/USDT={headed}"],
    )
    assert binance_rows(server, "AAAUSDT", DAY_2024) == expected_rows(DAY_2024)
    assert binance_rows(server, "BBBUSDT", DAY_2025) == expected_rows(DAY_2025)
    raw = httpx.get(
        f"{server.venue_base_url('binance')}/api/v3/klines",
        params={"symbol": "CCCUSDT", "interval": "1m", "startTime": DAY_2024},
        timeout=10,
    ).json()
    assert [r[0] for r in raw] == bars_ms(DAY_2024)
    assert [r[8] for r in raw] == [7, 8, 9]  # the archive's ``count`` column, not invented trade counts
    assert [r[9] for r in raw] == ["1.25000000"] * 3


def test_freqtrade_json_json_gz_and_feather(tmp_path: Path, make_simulator: MakeSimulator) -> None:
    rows = [[day + m * MINUTE, *(float(v) for v in values)] for day in (DAY_2024,) for m, *values in BARS]
    (tmp_path / "AAA_USDT-1m.json").write_text(json.dumps(rows))
    (tmp_path / "BBB_USDT-1m.json.gz").write_bytes(gzip.compress(json.dumps(rows).encode()))
    frame = pd.DataFrame(rows, columns=["date", "open", "high", "low", "close", "volume"])
    frame["date"] = pd.to_datetime(frame["date"], unit="ms", utc=True)
    frame.to_feather(tmp_path / "CCC_USDT-1m.feather")
    server = make_simulator(
        limits_enabled=False,
        replay=[
            f"binance:AAA/USDT={tmp_path / 'AAA_USDT-1m.json'}",
            f"binance:BBB/USDT={tmp_path / 'BBB_USDT-1m.json.gz'}",
            f"binance:CCC/USDT={tmp_path / 'CCC_USDT-1m.feather'}",
        ],
    )
    for symbol in ("AAAUSDT", "BBBUSDT", "CCCUSDT"):
        assert binance_rows(server, symbol, DAY_2024) == expected_rows(DAY_2024), symbol


@pytest.mark.parametrize(
    "stamps",
    [
        ["2024-01-01 00:00:00", "2024-01-01 00:01:00", "2024-01-01 00:03:00"],  # naive = UTC
        ["2024-01-01T00:00:00Z", "2024-01-01T00:01:00+00:00", "2024-01-01T01:03:00+01:00"],
        [str(t // 1000) for t in bars_ms(DAY_2024)],  # seconds
        [str(t) for t in bars_ms(DAY_2024)],  # milliseconds
        [str(t * 1000) for t in bars_ms(DAY_2024)],  # microseconds
        [str(t * 1_000_000) for t in bars_ms(DAY_2024)],  # nanoseconds
    ],
    ids=["iso-naive", "iso-offsets", "s", "ms", "us", "ns"],
)
def test_header_csv_with_iso_or_epoch_timestamps(
    stamps: list[str], tmp_path: Path, make_simulator: MakeSimulator
) -> None:
    path = tmp_path / "candles.csv"
    body = "".join(f"{t},{o},{h},{lo},{c},{v}\n" for t, (_, o, h, lo, c, v) in zip(stamps, BARS, strict=True))
    path.write_text("timestamp,open,high,low,close,volume\n" + body)
    server = make_simulator(limits_enabled=False, replay=[f"binance:HDR/USDT={path}"])
    assert binance_rows(server, "HDRUSDT", DAY_2024) == expected_rows(DAY_2024)


# -- refusals: one error naming the file and the reason -----------------------------------------


def refuse(tmp_path: Path, name: str, content: str | bytes | dict[str, str]) -> str:
    path = tmp_path / name
    if isinstance(content, dict):
        write_zip(path, content)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(ValueError) as info:
        Simulator(SimulatorConfig(replay=[f"binance:BAD/USDT={path}"]))
    message = str(info.value)
    assert message.startswith(str(path)), message
    return message


def rows_csv(stamps: Sequence[int | str], width: int = 6) -> str:
    extra = ",1,2,3,4,5,6"[: 2 * (width - 6)] if width > 6 else ""
    return "".join(f"{t},1.5,1.75,1.25,1.5,10{extra}\n" for t in stamps)


def test_refuses_a_lean_csv_without_its_date(tmp_path: Path) -> None:
    message = refuse(tmp_path, "btcusdt_minute_trade.csv", lean_csv())
    assert "LEAN" in message and "no date" in message and "20240101_btcusdt_minute_trade.csv" in message


def test_refuses_lean_quote_bars(tmp_path: Path) -> None:
    quote = "".join(f"{m * MINUTE},1,1,1,1,5,1.1,1.1,1.1,1.1,6\n" for m in range(3))
    message = refuse(tmp_path, "20240101_btcusdt_minute_quote.csv", quote)
    assert "11 columns" in message and "quote bars" in message


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("magnitude.csv", rows_csv([10**10, 10**10 + 60]), "fit no epoch unit"),
        ("negative.csv", rows_csv([-60_000, 0]), "fit no epoch unit"),
        ("seconds.csv", rows_csv([DAY_2024 // 1000 + 30, DAY_2024 // 1000 + 90]), "not on minute boundaries"),
        ("offminute.csv", rows_csv([DAY_2024 + 1234, DAY_2024 + MINUTE]), "not on minute boundaries"),
        ("old.csv", "date,open,high,low,close,volume\n2005-03-01 00:00,1,1,1,1,1\n", "before 2009-01-01"),
        ("future.csv", "date,open,high,low,close,volume\n2100-01-01 00:00,1,1,1,1,1\n", "in the future"),
        ("text.csv", "timestamp,open,high,low,close,volume\nyesterday,1,1,1,1,1\n", "neither epoch"),
        (
            "mixed.csv",
            f"timestamp,open,high,low,close,volume\n{DAY_2024},1,1,1,1,1\nnoon,1,1,1,1,1\n",
            "mixes",
        ),
        (
            "five_minutes.csv",
            rows_csv([DAY_2024 + i * 5 * MINUTE for i in range(12)]),
            "multiple of 5 minutes",
        ),
        ("three_columns.csv", f"{DAY_2024},1,2\n", "3 column(s)"),
        ("empty.csv", "", "no rows"),
        ("two.zip", {"a.csv": rows_csv([DAY_2024]), "b.csv": rows_csv([DAY_2024])}, "exactly one CSV"),
        ("broken.zip", b"not a zip", "cannot be read"),
        ("object.json", '{"date": 1}', "list of [date_ms"),
        ("data.xlsx", b"", "unsupported replay file type"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 20 else None,
)
def test_refuses_with_one_clear_error(tmp_path: Path, name: str, content: str | bytes, reason: str) -> None:
    assert reason in refuse(tmp_path, name, content)


def test_cli_names_the_file_it_refuses(tmp_path: Path) -> None:
    path = tmp_path / "btcusdt.csv"
    path.write_text(lean_csv())
    # a subprocess with a timeout: were the file accepted, the CLI would serve until interrupted
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "marketdata_assets.simulator.cli",
            "--port",
            "0",
            "--replay",
            f"binance:BTC/USDT={path}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith(f"marketdata-sim: {path}: ") and "LEAN" in done.stderr
    assert done.stderr.count("\n") == 1
