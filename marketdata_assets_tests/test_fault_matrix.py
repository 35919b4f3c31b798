"""The fault matrix stays honest: every listed id is a real test, and docs/RELIABILITY.md cites
exactly the listed tests (so the doc cannot claim a test that does not exist or is not run)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from marketdata_assets_tests.faults import FAULT_TESTS, T

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "RELIABILITY.md"


def test_every_listed_fault_test_exists() -> None:
    missing = []
    for node_id in FAULT_TESTS:
        path, name = node_id.split("::")
        tree = ast.parse((REPO / T / path).read_text())
        names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
        if name not in names:
            missing.append(node_id)
    assert missing == []


def test_the_reliability_doc_cites_exactly_the_fault_tests() -> None:
    cited = set(re.findall(r"`([\w/]+\.py::test_\w+)`", DOC.read_text()))
    listed = set(FAULT_TESTS)
    assert sorted(listed - cited) == [], "listed in faults.py, not cited in docs/RELIABILITY.md"
    assert sorted(cited - listed) == [], "cited in docs/RELIABILITY.md, not listed in faults.py"
