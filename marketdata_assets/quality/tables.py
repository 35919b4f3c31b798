"""Small tables for check and materialisation metadata.

:func:`table` / :func:`frame_table` give plain data (``{"columns": [...], "rows": [...]}``) that the
Dagster layer shows as table metadata with a schema; :func:`markdown_rows` / :func:`markdown_table` are
the one markdown writer, for text that must be read where no table renders (an error message).
Terminal tables use ``tabulate`` (:mod:`marketdata_assets.cli.main`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd


def markdown_rows(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """``header`` and ``rows`` as a markdown table; cells are formatted by :func:`cell` and a ``|`` in a
    cell is replaced so it cannot split the row."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown_table(frame: pd.DataFrame) -> str:
    """A small frame as a markdown table."""
    return markdown_rows([str(c) for c in frame.columns], frame.itertuples(index=False))


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return str(value).replace("|", "/")


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> dict[str, list]:
    """A small table as plain JSON-friendly data, ``{"columns": [...], "rows": [[...], ...]}``; the Dagster
    layer shows it as table metadata with a schema (``defs/common.py``), the verdict stores it as is."""
    return {"columns": [str(h) for h in header], "rows": [[json_cell(v) for v in row] for row in rows]}


def frame_table(frame: pd.DataFrame) -> dict[str, list]:
    """A small frame as :func:`table` data."""
    return table(list(frame.columns), frame.itertuples(index=False))


def is_table(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"columns", "rows"}


def json_cell(value: Any) -> Any:
    """A cell as JSON-friendly data: timestamps as ISO text, numpy scalars as Python numbers."""
    if value is None:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy scalar
    if isinstance(value, float) and value != value:
        return None  # NaN
    if isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
