"""The shape of the code, checked: a pure core with no Dagster, one home per fact, public Dagster APIs.

Static checks over the source (fast, no imports of the project) plus one subprocess that imports the
core and proves Dagster was not loaded.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from marketdata_assets import universe

PACKAGE = Path(__file__).resolve().parent.parent / "marketdata_assets"
CORE = ("pipeline", "venues", "quality", "transform", "storage", "simulator", "live")
CORE_MODULES = ("universe.py", "settings.py", "frames.py", "client.py")
# Only the Dagster definitions and the entry points that launch runs import Dagster.
SHELL = ("defs", "definitions.py", "cli")


def _sources(*parts: str) -> list[Path]:
    files: list[Path] = []
    for part in parts:
        path = PACKAGE / part
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return files


def _imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
    return out


def test_every_module_belongs_to_the_core_or_the_shell() -> None:
    top = {p.name for p in PACKAGE.iterdir() if not p.name.startswith(("_", "."))} - {"__pycache__"}
    assert top <= set(CORE) | set(CORE_MODULES) | set(SHELL), top - set(CORE) - set(CORE_MODULES) - set(SHELL)


@pytest.mark.parametrize("path", _sources(*CORE, *CORE_MODULES), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_core_never_imports_dagster(path: Path) -> None:
    dagster_imports = [
        f"{path.name}:{line} imports {name}"
        for line, name in _imports(path)
        if name == "dagster" or name.startswith(("dagster.", "dagster_"))
    ]
    assert not dagster_imports


def test_importing_the_core_loads_no_dagster() -> None:
    modules = [
        "marketdata_assets.pipeline.ingest",
        "marketdata_assets.pipeline.validate",
        "marketdata_assets.pipeline.resample",
        "marketdata_assets.pipeline.dvol",
        "marketdata_assets.pipeline.reference",
        "marketdata_assets.pipeline.plan",
        "marketdata_assets.client",
        "marketdata_assets.settings",
        "marketdata_assets.simulator",
        "marketdata_assets.venues.registry",
    ]
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + "print(sorted(m for m in sys.modules if m == 'dagster' or m.startswith('dagster.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_private_dagster_imports_are_explained() -> None:
    """Every ``dagster._...`` import in the package stands under a comment that says why (and names the
    test pinning it)."""
    unexplained = []
    for path in _sources(*SHELL):
        lines = path.read_text().splitlines()
        for line, name in _imports(path):
            if name.startswith("dagster._"):
                above = "\n".join(lines[max(0, line - 6) : line - 1])
                if "Private Dagster API" not in above:
                    unexplained.append(f"{path.relative_to(PACKAGE)}:{line} {name}")
    assert not unexplained


def _literal_facts(path: Path) -> list[str]:
    """Tuples spelling out the venue list or DVOL currencies, and DVOL's first day, outside universe.py."""
    venues = {tuple(universe.CANDLE_VENUES), tuple(universe.VENUES)}
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.Tuple, ast.List)) and all(isinstance(e, ast.Constant) for e in node.elts):
            values = tuple(e.value for e in node.elts)
            if values in venues or values == tuple(universe.DVOL_CURRENCIES):
                found.append(f"{path.name}:{node.lineno} {values}")
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "date" and len(node.args) == 3:
            args = node.args
            constant = all(isinstance(a, ast.Constant) for a in args)
            if constant and date(*(a.value for a in args)) == universe.DVOL_FIRST_DAY:
                found.append(f"{path.name}:{node.lineno} DVOL's first day")
    return found


def test_the_universe_is_defined_once() -> None:
    found = [
        fact
        for path in _sources(*CORE, *CORE_MODULES, *SHELL)
        if path.name != "universe.py"
        for fact in _literal_facts(path)
    ]
    assert not found


def test_venue_tables_cover_exactly_the_universe() -> None:
    from marketdata_assets.simulator.venues import venue_apis
    from marketdata_assets.venues.ccxt_venue import WIRES

    assert tuple(WIRES) == universe.CANDLE_VENUES
    assert tuple(venue_apis()) == universe.VENUES


@pytest.mark.parametrize(
    ("venue", "instrument", "key"),
    [
        ("binance", "BTCUSDT", "2024-01-02|BTCUSDT"),
        ("okx", "ETHUSDT", "2024-01-02|ETHUSDT"),
        ("deribit", "BTC", "BTC|2024-01-02"),
    ],
)
def test_partition_keys_round_trip(venue: str, instrument: str, key: str) -> None:
    assert universe.partition_key(venue, instrument, date(2024, 1, 2)) == key
    assert universe.split_partition_key(venue, key) == (instrument, date(2024, 1, 2))


@pytest.mark.parametrize("bad", ["2024-01-02", "BTCUSDT|2024-01-02|x", "2024-13-02|BTCUSDT", ""])
def test_a_malformed_partition_key_is_refused_by_name(bad: str) -> None:
    with pytest.raises(ValueError, match="partition key"):
        universe.split_partition_key("binance", bad)
