"""The nightly schedules, the gap backfill sensor and the catalog sensor, evaluated over a real instance
whose history comes from real runs against the simulator (missing, failed, in-progress, outage days)."""

from __future__ import annotations

import json
import textwrap
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from dagster import (
    AssetKey,
    DagsterEventType,
    DagsterRunStatus,
    build_schedule_context,
    build_sensor_context,
)
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from dagster._core.test_utils import create_run_for_test, instance_for_test

from marketdata_assets.definitions import build_definitions
from marketdata_assets.defs.automation import refresh_keys
from marketdata_assets.settings import LoadedSettings, load_settings
from marketdata_assets.storage.root import StorageRoot
from marketdata_assets.storage.served import read_gaps

TODAY = datetime.now(UTC).date()
DAY_MS = 86_400_000


def day_ms(day: date, hour: int = 0) -> int:
    return int(datetime(day.year, day.month, day.day, hour, tzinfo=UTC).timestamp() * 1000)


def automation_settings(
    tmp_path: Path,
    server,  # noqa: ANN001 - SimulatorServer
    *,
    venues: tuple[str, ...] = ("binance", "bybit"),
    start: date | None = None,
    dvol: bool = False,
    automation: str = "",
) -> LoadedSettings:
    start = start or TODAY - timedelta(days=4)
    blocks = "".join(
        f"""
          {venue}:
            symbols: [BTC/USDT, ETH/USDT]
            start_date: {start.isoformat()}
            base_url: {server.url}/{venue}
            rate_limit_ms: 5
            timeout_ms: 3000
            max_retries: 0
        """
        for venue in venues
    )
    dvol_block = f"""
        dvol:
          currencies: [BTC, ETH]
          start_date: {start.isoformat()}
          base_url: {server.url}/deribit
          rate_limit_ms: 5
    """
    text = textwrap.dedent(
        f"""
        environment: automation-test
        synthetic: true
        storage:
          root: {tmp_path / "data"}
        venues:{blocks}"""
    )
    if dvol:
        text += textwrap.dedent(dvol_block)
    text += "automation:\n  nightly_grace_minutes: 0\n" + textwrap.indent(textwrap.dedent(automation), "  ")
    path = tmp_path / "settings.yaml"
    path.write_text(text)
    return load_settings(path, environ={})


def range_tags(first: date, last: date, symbols: tuple[str, str] = ("BTCUSDT", "ETHUSDT")) -> dict[str, str]:
    return {
        ASSET_PARTITION_RANGE_START_TAG: f"{first.isoformat()}|{symbols[0]}",
        ASSET_PARTITION_RANGE_END_TAG: f"{last.isoformat()}|{symbols[1]}",
    }


def refresh(defs, instance, venue: str, tags: dict[str, str]) -> bool:  # noqa: ANN001
    """Run ``refresh_<venue>`` in process the way the daemon would run the request."""
    job = defs.resolve_job_def(f"refresh_{venue}")
    return job.execute_in_process(instance=instance, tags=tags, raise_on_error=False).success


def tick(defs, instance, name: str = "gap_backfill", cursor: str | None = None):  # noqa: ANN001, ANN201
    sensor = defs.get_repository_def().get_sensor_def(name)
    context = build_sensor_context(
        instance=instance, cursor=cursor, repository_def=defs.get_repository_def(), resources=defs.resources
    )
    return sensor.evaluate_tick(context)


def requested(result) -> list[tuple[str, str, str, str]]:  # noqa: ANN001
    return sorted(
        (
            r.job_name,
            r.tags[ASSET_PARTITION_RANGE_START_TAG],
            r.tags[ASSET_PARTITION_RANGE_END_TAG],
            r.tags["marketdata/reasons"],
        )
        for r in result.run_requests
    )


def test_nightly_schedules_request_yesterday_for_every_symbol_one_run_per_venue(
    tmp_path: Path, simulator
) -> None:
    settings = automation_settings(tmp_path, simulator, start=date(2024, 3, 1), dvol=True)
    defs = build_definitions(settings)
    repo = defs.get_repository_def()
    nightly = [s for s in repo.schedule_defs if s.name.startswith("nightly_")]
    assert sorted(s.name for s in nightly) == ["nightly_binance", "nightly_bybit", "nightly_deribit"]
    assert {s.name for s in repo.schedule_defs} - {s.name for s in nightly} == {
        "freshness_checks_schedule",
        "daily_instruments",
    }
    requests = {}
    with instance_for_test() as instance:
        for schedule in nightly:
            assert schedule.cron_schedule == "15 0 * * *" and schedule.execution_timezone == "UTC"
            context = build_schedule_context(
                instance=instance,
                scheduled_execution_time=datetime(2024, 3, 6, 0, 15, tzinfo=UTC),
                repository_def=repo,
            )
            [request] = schedule.evaluate_tick(context).run_requests
            requests[schedule.name] = request
        binance = requests["nightly_binance"]
        assert binance.tags[ASSET_PARTITION_RANGE_START_TAG] == "2024-03-05|BTCUSDT"
        assert binance.tags[ASSET_PARTITION_RANGE_END_TAG] == "2024-03-05|ETHUSDT"
        assert binance.tags["marketdata/launched_by"] == "schedule nightly_binance"
        assert binance.run_key == "nightly_binance:2024-03-05"
        assert set(binance.asset_selection) == set(refresh_keys("binance"))
        assert requests["nightly_deribit"].tags[ASSET_PARTITION_RANGE_START_TAG] == "BTC|2024-03-05"
        assert requests["nightly_deribit"].tags[ASSET_PARTITION_RANGE_END_TAG] == "ETH|2024-03-05"

        # the request is one run: both symbols, raw through served, with the checks
        assert refresh(defs, instance, "binance", dict(binance.tags))
        for key in refresh_keys("binance"):
            status = instance.get_status_by_partition(
                key, ["2024-03-05|BTCUSDT", "2024-03-05|ETHUSDT"], repo.assets_defs_by_key[key].partitions_def
            )
            assert {s.value for s in status.values()} == {"MATERIALIZED"}, (key, status)
        [run] = instance.get_runs()
        assert run.tags["marketdata/launched_by"] == "schedule nightly_binance"
        evaluated = instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION)
        assert {e.dagster_event.event_specific_data.asset_key for e in evaluated} == {
            AssetKey(["binance", "ohlcv_1m_raw"]),
            AssetKey(["binance", "ohlcv_1m"]),
        }

        early = build_schedule_context(
            instance=instance,
            scheduled_execution_time=datetime(2024, 3, 1, 0, 15, tzinfo=UTC),
            repository_def=repo,
        )
        assert repo.get_schedule_def("nightly_binance").evaluate_tick(early).skip_message


def test_gap_sensor_requests_missing_failed_and_outage_days_but_nothing_in_flight(
    tmp_path: Path, simulator
) -> None:
    d1, d2, d3, d4 = (TODAY - timedelta(days=n) for n in (4, 3, 2, 1))
    settings = automation_settings(tmp_path, simulator, automation="max_runs_in_flight_per_venue: 3\n")
    defs = build_definitions(settings)
    # the venue served nothing for 3 hours (every symbol silent): an outage, corroborated across symbols
    simulator.add_outage("binance", day_ms(d2, 3), day_ms(d2, 6))
    fault = simulator.add_fault("bybit:http:status=503,symbol=ETH/USDT,endpoint=kline")
    with instance_for_test() as instance:
        assert refresh(defs, instance, "binance", range_tags(d1, d3))  # d4 never fetched
        assert not refresh(defs, instance, "bybit", range_tags(d1, d4))  # ETH answers 503
        simulator.remove_fault(fault.id)
        root = StorageRoot.from_uri(settings.storage_root)
        assert set(read_gaps(root, "binance", "BTCUSDT")["kind"]) >= {"outage"}
        # someone is fetching binance ETH of d4 right now
        create_run_for_test(
            instance,
            job_name="refresh_binance",
            status=DagsterRunStatus.STARTED,
            tags={"dagster/partition": f"{d4.isoformat()}|ETHUSDT"},
            asset_selection=frozenset(refresh_keys("binance")),
        )

        first = tick(defs, instance)
        assert requested(first) == sorted(
            [
                ("refresh_binance", f"{d4}|BTCUSDT", f"{d4}|BTCUSDT", "missing=1"),  # not ETH: running
                ("refresh_binance", f"{d2}|BTCUSDT", f"{d2}|ETHUSDT", "outage=2"),
                ("refresh_bybit", f"{d1}|BTCUSDT", f"{d4}|ETHUSDT", "failed=8"),  # one run, both symbols
            ]
        )
        assert all(r.tags["marketdata/launched_by"] == "sensor gap_backfill" for r in first.run_requests)
        cursor = json.loads(first.cursor)["days"]
        assert cursor[f"binance|BTCUSDT|{d2}"]["reason"] == "outage" and len(cursor) == 11

        # the same tick again: everything just requested is backing off
        again = tick(defs, instance, cursor=first.cursor)
        assert again.run_requests == [] and "11 day(s) backing off" in again.skip_message

        # with the requested runs launching, a sensor with no memory (cursor reset) requests nothing twice
        for request in first.run_requests:
            create_run_for_test(
                instance,
                job_name=request.job_name,
                status=DagsterRunStatus.STARTING,
                tags=dict(request.tags),
                asset_selection=frozenset(request.asset_selection),
            )
        fresh = tick(defs, instance, cursor=None)
        assert fresh.run_requests == [], fresh.skip_message
        assert "12 day(s) already queued or running" in fresh.skip_message

        # once the runs have ended (here: the bybit one ran and healed), only what still needs work remains
        for run in instance.get_runs():
            if run.status in (DagsterRunStatus.STARTING, DagsterRunStatus.STARTED):
                instance.report_run_canceled(run)
        [bybit] = [r for r in first.run_requests if r.job_name == "refresh_bybit"]
        assert refresh(defs, instance, "bybit", dict(bybit.tags))
        later = tick(defs, instance, cursor=None)
        assert requested(later) == sorted(
            [
                ("refresh_binance", f"{d4}|BTCUSDT", f"{d4}|ETHUSDT", "missing=2"),  # ETH no longer running
                ("refresh_binance", f"{d2}|BTCUSDT", f"{d2}|ETHUSDT", "outage=2"),
            ]
        )
        assert json.loads(later.cursor)["days"].keys() == {
            f"binance|BTCUSDT|{d4}",
            f"binance|ETHUSDT|{d4}",
            f"binance|BTCUSDT|{d2}",
            f"binance|ETHUSDT|{d2}",
        }


def test_an_outage_that_stays_is_retried_with_backoff_then_given_up_visibly(
    tmp_path: Path, simulator
) -> None:
    day = TODAY - timedelta(days=1)
    settings = automation_settings(
        tmp_path,
        simulator,
        venues=("binance",),
        start=day,
        automation="retry_base_minutes: 0.01\nmax_tries: 2\n",  # 0.6 s, then 1.2 s
    )
    defs = build_definitions(settings)
    simulator.add_outage("binance", day_ms(day, 10), day_ms(day, 12))  # the venue silent: an outage
    with instance_for_test() as instance:
        assert refresh(defs, instance, "binance", range_tags(day, day))
        cursor, tries, given_up = None, [], []
        deadline = time.monotonic() + 30
        while not given_up and time.monotonic() < deadline:
            result = tick(defs, instance, cursor=cursor)
            cursor = result.cursor
            for request in result.run_requests:
                assert request.tags[ASSET_PARTITION_RANGE_START_TAG] == f"{day}|BTCUSDT"
                assert request.tags[ASSET_PARTITION_RANGE_END_TAG] == f"{day}|ETHUSDT"
                tries.append(int(request.tags["marketdata/tries"]))
                assert refresh(defs, instance, "binance", dict(request.tags))  # the outage is still there
            given_up = result.asset_events
            time.sleep(0.2)
        assert tries == [1, 2]
        assert {e.partition for e in given_up} == {f"{day}|BTCUSDT", f"{day}|ETHUSDT"}
        for event in given_up:
            assert event.asset_key == AssetKey(["binance", "ohlcv_1m_raw"])
            assert event.metadata["automation"].value == "still missing after 2 tries (outage)"
        final = tick(defs, instance, cursor=cursor)
        assert final.run_requests == [] and final.asset_events == []
        assert (
            f"still missing after 2 tries: binance BTCUSDT {day}, binance ETHUSDT {day}" in final.skip_message
        )


def test_missing_history_of_a_new_symbol_or_earlier_start_is_backfilled_in_the_configured_order(
    tmp_path: Path, simulator
) -> None:
    start = TODAY - timedelta(days=40)
    settings = automation_settings(
        tmp_path,
        simulator,
        venues=("binance",),
        start=start,
        automation="backfill_order: oldest_first\nmax_days_per_run: 31\nmax_runs_per_tick: 1\n",
    )
    defs = build_definitions(settings)
    with instance_for_test() as instance:
        first = tick(defs, instance)
        [request] = first.run_requests  # capped at one run per tick; the oldest 31 days, both symbols
        assert request.tags[ASSET_PARTITION_RANGE_START_TAG] == f"{start}|BTCUSDT"
        assert request.tags[ASSET_PARTITION_RANGE_END_TAG] == f"{start + timedelta(days=30)}|ETHUSDT"
        [rest] = tick(defs, instance, cursor=first.cursor).run_requests  # the next tick: the newer rest
        assert rest.tags[ASSET_PARTITION_RANGE_START_TAG] == f"{start + timedelta(days=31)}|BTCUSDT"
        assert rest.tags[ASSET_PARTITION_RANGE_END_TAG] == f"{TODAY - timedelta(days=1)}|ETHUSDT"


def test_catalog_sensor_waits_for_served_data_and_for_the_runs_to_end(tmp_path: Path, simulator) -> None:
    day = TODAY - timedelta(days=1)
    settings = automation_settings(tmp_path, simulator, venues=("binance",), start=day)
    defs = build_definitions(settings)
    with instance_for_test() as instance:
        assert "nothing served yet" in tick(defs, instance, "catalog_refresh").skip_message
        assert refresh(defs, instance, "binance", range_tags(day, day))
        run = create_run_for_test(
            instance,
            job_name="refresh_binance",
            status=DagsterRunStatus.STARTING,
            tags=range_tags(day, day),
            asset_selection=frozenset(refresh_keys("binance")),
        )
        assert "queued or running" in tick(defs, instance, "catalog_refresh").skip_message
        instance.report_run_canceled(run)
        [request] = tick(defs, instance, "catalog_refresh").run_requests
        assert request.job_name == "refresh_catalog"
        assert defs.resolve_job_def("refresh_catalog").execute_in_process(instance=instance).success
        assert "newer than every served asset" in tick(defs, instance, "catalog_refresh").skip_message


def test_automation_is_stopped_unless_the_settings_say_running(tmp_path: Path, simulator) -> None:
    from dagster import DefaultScheduleStatus, DefaultSensorStatus

    # (an instance in scope: Dagster resolves definitions state through the current instance)
    with instance_for_test():
        stopped = build_definitions(automation_settings(tmp_path, simulator)).get_repository_def()
        assert {s.default_status for s in stopped.sensor_defs} == {DefaultSensorStatus.STOPPED}
        assert {s.default_status for s in stopped.schedule_defs} == {DefaultScheduleStatus.STOPPED}
        running = automation_settings(
            tmp_path,
            simulator,
            automation="running: true\nnightly_cron: '30 1 * * *'\nsensor_interval_s: 5\n",
        )
        repo = build_definitions(running).get_repository_def()
        assert {s.default_status for s in repo.sensor_defs} == {DefaultSensorStatus.RUNNING}
        nightly = [s for s in repo.schedule_defs if s.name.startswith("nightly_")]
        assert {s.cron_schedule for s in nightly} == {"30 1 * * *"}
        assert {s.default_status for s in repo.schedule_defs} == {DefaultScheduleStatus.RUNNING}
        assert repo.get_sensor_def("gap_backfill").minimum_interval_seconds == 5
