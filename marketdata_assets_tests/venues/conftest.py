"""Each venue test gets its own shared rate-limit state directory.

The sources book every request in a machine-wide state file (``venues/limiter.py``); a ban recorded
by one test against a simulator port must not outlive the test and block a later simulator that
happens to get the same ephemeral port.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from marketdata_assets.venues.limiter import STATE_DIR_ENV


@pytest.fixture(autouse=True)
def isolated_limiter_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    state = tmp_path / "limiter-state"
    monkeypatch.setenv(STATE_DIR_ENV, str(state))
    return state
