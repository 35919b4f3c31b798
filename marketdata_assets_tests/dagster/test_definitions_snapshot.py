"""A snapshot of the whole Definitions: a change of the asset graph shows as a diff of one JSON file.

Asset keys, groups, kinds, dependencies, partitions, pools, checks (and whether they block), jobs,
schedules, sensors and resources, for a fixed settings file. When a change is intended, rewrite the
snapshot with ``UPDATE_SNAPSHOTS=1 uv run pytest marketdata_assets_tests/dagster/test_definitions_snapshot.py``
and commit the diff with the change.

Also pins what the Dagster layer takes from Dagster's private modules (see test_architecture.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from dagster import Definitions

from marketdata_assets.definitions import build_definitions
from marketdata_assets.settings import load_settings
from marketdata_assets.universe import PARTITION_NAME_TAG, PARTITION_RANGE_END_TAG, PARTITION_RANGE_START_TAG

SNAPSHOT = Path(__file__).parent / "snapshots" / "definitions.json"
SETTINGS = """
environment: snapshot
synthetic: true
storage:
  root: {root}
venues:
  binance:
    symbols: [BTC/USDT, ETH/USDT]
    start_date: 2024-03-01
    base_url: http://127.0.0.1:1/binance
  okx:
    symbols: [BTC/USDT]
    start_date: 2024-03-01
    base_url: http://127.0.0.1:1/okx
dvol:
  currencies: [BTC, ETH]
  start_date: 2024-03-01
  base_url: http://127.0.0.1:1/deribit
"""


def _partitions(partitions_def: object) -> str | None:
    if partitions_def is None:
        return None
    dims = getattr(partitions_def, "partitions_defs", None)
    if dims is None:
        return str(partitions_def)
    return " x ".join(f"{d.name}: {d.partitions_def}" for d in dims)


def snapshot(defs: Definitions) -> dict:
    graph = defs.resolve_asset_graph()
    checks_by_asset: dict = {}
    for check in graph.asset_check_keys:
        checks_by_asset.setdefault(check.asset_key, []).append(check)
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "kinds": sorted(node.kinds),
            "deps": sorted(p.to_user_string() for p in node.parent_keys),
            "partitions": _partitions(node.partitions_def),
            "pools": sorted(node.pools or []),
            "backfill_policy": str(node.backfill_policy) if node.backfill_policy else None,
            "checks": {
                check.name: {"blocking": graph.get_check_spec(check).blocking}
                for check in sorted(checks_by_asset.get(key, []), key=lambda c: c.name)
            },
        }
    repo = defs.get_repository_def()
    return {
        "assets": assets,
        "jobs": sorted(job.name for job in repo.get_all_jobs() if not job.name.startswith("__")),
        "schedules": {s.name: s.cron_schedule for s in sorted(repo.schedule_defs, key=lambda s: s.name)},
        "sensors": sorted(s.name for s in repo.sensor_defs),
        "resources": {key: type(value).__name__ for key, value in sorted(defs.resources.items())},
    }


def test_definitions_match_the_snapshot(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    config = tmp_path / "snapshot.yaml"
    config.write_text(SETTINGS.format(root=tmp_path / "data"))
    monkeypatch.setenv("MARKETDATA_CONFIG", str(config))
    monkeypatch.delenv("MARKETDATA_ROOT", raising=False)
    current = snapshot(build_definitions(load_settings()))
    text = json.dumps(current, indent=2, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_SNAPSHOTS") or not SNAPSHOT.exists():
        SNAPSHOT.write_text(text)
    assert json.loads(SNAPSHOT.read_text()) == current, (
        "the Definitions changed; if intended, rerun with UPDATE_SNAPSHOTS=1 and commit the snapshot"
    )


def test_the_private_dagster_names_we_rely_on_still_exist() -> None:
    """The run tags we write and read, and the one private import of defs/checks.py."""
    from dagster._core.definitions.asset_checks.asset_check_evaluation import (  # Private Dagster API
        AssetCheckEvaluationTargetMaterializationData,
    )
    from dagster._core.storage import tags

    assert tags.PARTITION_NAME_TAG == PARTITION_NAME_TAG
    assert tags.ASSET_PARTITION_RANGE_START_TAG == PARTITION_RANGE_START_TAG
    assert tags.ASSET_PARTITION_RANGE_END_TAG == PARTITION_RANGE_END_TAG
    assert {"storage_id", "run_id", "timestamp"} <= set(AssetCheckEvaluationTargetMaterializationData._fields)
