"""The one markdown table writer of the platform (check and materialisation metadata).

Compact GitHub-flavoured rows (``| a | b |``) with no padding: the Dagster UI renders them, and the
exact cell text stays greppable. Terminal tables use ``tabulate`` (:mod:`marketdata_assets.cli.main`).
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
