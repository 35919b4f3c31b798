"""``marketdata serve`` in a child process, on a clock the test steps (the kill -9 fault test).

    python -m marketdata_assets_tests.live.serve_child CLOCK_FILE serve --config FILE --port 0

Runs the real command line (``marketdata_assets.cli.main.main``: settings, Redis, uvicorn, the polling
thread) with one difference: the service's clock reads epoch seconds from ``CLOCK_FILE``, which the
test rewrites (atomically) to step minutes, and which the test's in-process simulator reads too.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


class FileClock:
    """Epoch seconds from a file the test replaces atomically (never a partial read)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self) -> float:
        return float(self.path.read_text())


def main(argv: list[str]) -> int:
    import marketdata_assets.live.server as server
    from marketdata_assets.cli.main import main as cli

    clock = FileClock(Path(argv[0]))
    build = server.build_service

    def build_service(settings: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("clock", clock)
        return build(settings, **kwargs)

    server.build_service = build_service  # serve_command imports it from the module at call time
    return cli(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
