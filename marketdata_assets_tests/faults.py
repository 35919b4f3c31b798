"""The fault matrix (``make faults`` = ``pytest -m faults``): which tests prove a fault case.

One list, keyed by test node ids (``file::test``, every parametrisation included), so the matrix is
read in one place and the test files stay as they are. ``conftest.py`` marks the listed tests
``faults``; ``test_fault_matrix.py`` checks that every id names a test that exists and that
``docs/RELIABILITY.md`` cites exactly these tests. Every one of them also runs in ``make test``.
"""

from __future__ import annotations

T = "marketdata_assets_tests/"  # the ids below are relative to this folder

FAULT_TESTS: dict[str, str] = {
    # venue faults
    "simulator/test_faults.py::test_http_errors_by_rate_are_deterministic": "venue 5xx",
    "simulator/test_faults.py::test_http_error_bodies_and_count": "venue 5xx",
    "simulator/test_faults.py::test_slow_response_passes_the_client_timeout": "venue timeout",
    "simulator/test_faults.py::test_dropped_connection": "venue dropped connection",
    "simulator/test_faults.py::test_truncated_body": "venue truncated body",
    "simulator/test_faults.py::test_html_error_page": "venue HTML body",
    "simulator/test_faults.py::test_maintenance_window_on_the_simulator_clock": "venue maintenance",
    "venues/test_retry.py::test_transient_failures_are_retried_with_growing_jittered_delays": "venue 5xx/timeout",
    "venues/test_retry.py::test_gives_up_after_max_retries_with_the_last_error": "venue down",
    "venues/test_retry.py::test_malformed_answers_have_their_own_smaller_cap": "venue truncated/HTML",
    "venues/test_retry.py::test_rate_limit_waits_retry_after_and_holds_the_pacer": "venue 429",
    "venues/test_retry.py::test_ban_within_budget_is_waited_out": "venue ban",
    "venues/test_retry.py::test_ban_longer_than_max_wait_fails_at_once": "venue ban",
    "venues/test_retry.py::test_venue_error_names_venue_symbol_day_and_last_error": "venue down",
    "dagster/test_raw_ingestion_e2e.py::test_rate_limited_venue_is_retried_and_never_banned": "venue 429",
    "dagster/test_raw_ingestion_e2e.py::test_a_failing_venue_fails_only_its_own_partitions": "venue down",
    "venues/test_shared_limits_e2e.py::test_three_concurrent_runs_stay_within_the_venues_limits": "venue 429",
    "live/test_live_e2e.py::test_a_venue_outage_then_recovery_leaves_no_silent_hole": "venue down (live)",
    "venues/test_wire_bounds.py::test_a_hostile_retry_after_is_capped_or_ignored_with_a_log_line": "Retry-After bounds",  # noqa: E501
    "venues/test_wire_bounds.py::test_a_ban_with_an_absurd_retry_after_fails_at_once_and_blocks_no_longer_than_the_cap": "ban bound",  # noqa: E501
    "venues/test_wire_bounds.py::test_an_unexpected_status_code_is_retried_or_fails_at_once_naming_it": "status codes",  # noqa: E501
    "venues/test_wire_bounds.py::test_timestamps_years_ahead_or_before_the_venue_existed_are_dropped_and_skip_nothing": "timestamps",  # noqa: E501
    "venues/test_wire_bounds.py::test_a_page_far_larger_than_asked_is_refused_before_any_row_is_kept": "page size",  # noqa: E501
    "venues/test_wire_bounds.py::test_retry_policy_caps_hold_for_every_failure_kind": "wait caps",
    "venues/test_ccxt_venue.py::test_malformed_rows_fail_naming_what_was_wrong": "non-numeric fields",
    # data faults
    "quality/test_fault_modes.py::test_page_overlap_duplicates_are_identical_and_collapse": "duplicates",
    "dagster/test_raw_ingestion_e2e.py::test_page_boundary_duplicates_are_kept_and_counted": "duplicates",
    "quality/test_fault_modes.py::test_rows_out_of_order_pass_raw_but_a_stored_day_must_be_increasing": "order",
    "quality/test_fault_modes.py::test_invalid_rows_fail_their_rule_and_are_quarantined_with_the_reason": "invalid",
    "quality/test_fault_modes.py::test_dvol_nan_points_fail_the_dvol_schema": "invalid rows (NaN)",
    "quality/test_fault_modes.py::test_revised_values_conflict_and_the_last_fetch_wins": "revisions",
    "dagster/test_quality_serving_e2e.py::test_a_revised_day_is_stored_logged_and_served_again": "revisions",
    "quality/test_revisions.py::test_a_refetch_that_lost_candles_never_deletes_stored_ones": "worse re-fetch",
    "pipeline/test_refetch_safety.py::test_a_worse_refetch_never_replaces_good_candles_and_every_layer_stays_consistent": "worse re-fetch",  # noqa: E501
    "dagster/test_refetch_safety_e2e.py::test_a_nan_refetch_loses_nothing_and_keeps_every_layer_consistent": "NaN re-fetch",  # noqa: E501
    "quality/test_fault_modes.py::test_an_outage_shows_in_completeness_with_its_range": "outage",
    "dagster/test_raw_ingestion_e2e.py::test_outage_window_is_exactly_the_missing_minutes": "outage",
    "dagster/test_quality_serving_e2e.py::test_a_bad_day_is_held_back_while_the_rest_of_the_range_is_served": "invalid day held back",  # noqa: E501
    # process faults
    "test_backfill_kill_e2e.py::test_a_killed_backfill_leaves_no_workers_and_its_runs_are_failed_by_the_next_one": "kill -9 backfill",  # noqa: E501
    "test_instance.py::test_runs_of_a_gone_backfill_process_on_this_host_are_failed_with_the_reason": "kill -9 run",
    "test_instance.py::test_both_instances_enable_run_monitoring_without_resume": "run stuck",
    "test_instance.py::test_processes_opening_a_fresh_instance_at_the_same_moment_all_succeed": "concurrent start",
    "storage/test_atomic.py::test_a_write_killed_before_the_rename_leaves_the_old_file": "kill -9 writer",
    "storage/test_atomic.py::test_a_writer_crashing_mid_write_leaves_the_old_file_intact": "crashed writer",
    "storage/test_process_faults.py::test_a_month_writer_killed_mid_rewrite_leaves_a_whole_month": "kill -9 writer",
    "storage/test_process_faults.py::test_disk_full_during_a_month_rewrite_is_a_clear_error_and_the_month_stays": "disk full",  # noqa: E501
    "storage/test_process_faults.py::test_disk_full_during_a_raw_refetch_keeps_the_stored_day": "disk full",
    "pipeline/test_same_partition_twice.py::test_two_runs_of_one_partition_at_once_keep_the_union_in_every_layer": "same partition twice",  # noqa: E501
    "storage/test_served.py::test_concurrent_processes_writing_days_of_one_month_lose_nothing": "concurrent writers",
    "storage/test_compaction.py::test_crash_after_commit_before_delete_is_repaired_without_loss": "compaction",
    "storage/test_compaction.py::test_leftovers_merge_by_day_newest_wins_and_a_second_run_keeps_everything": "compaction",
    "storage/test_compaction.py::test_stale_temp_files_are_removed_and_fresh_ones_kept": "compaction",
    "objectstore/test_s3_storage.py::test_failed_write_keeps_the_old_object_and_leaves_no_partial_one": "S3 write",
    "objectstore/test_s3_lock.py::test_concurrent_processes_rewriting_one_month_lose_no_day": "S3 writers",
    "objectstore/test_s3_lock.py::test_a_lock_lost_mid_write_is_reported": "S3 lock lost",
    "objectstore/test_s3_lock.py::test_an_unreachable_lock_database_is_an_error_not_a_downgrade": "S3 lock db down",
    "objectstore/test_s3_storage.py::test_a_missing_bucket_is_a_clear_error": "S3 bucket missing",
    "live/test_live_e2e.py::test_a_restart_resumes_without_duplicates": "live restart",
    "live/test_live_kill.py::test_kill_9_of_the_live_service_then_a_restart_loses_and_repeats_nothing": "kill -9 live",  # noqa: E501
    "deploy/test_postgres_network_cut.py::test_a_network_cut_to_postgres_mid_backfill_is_retried_and_the_run_completes_losing_nothing": "Postgres cut",  # noqa: E501
    # bad input at every entry point
    "test_backfill_messages.py::test_an_empty_list_option_is_an_error_naming_it": "CLI",
    "dagster/test_raw_ingestion_e2e.py::test_today_or_later_is_refused_with_a_clear_message": "CLI/today",
    "test_settings.py::test_bad_files_name_file_key_and_expectation": "settings",
    "test_settings.py::test_a_root_that_cannot_hold_the_data_fails_at_load_naming_setting_and_path": "settings",
    "live/test_live_settings.py::test_a_bad_live_key_is_named": "settings (live)",
    "storage/test_root.py::test_unusable_roots_are_rejected": "storage root",
    "storage/test_root.py::test_bad_symbol_or_exchange_never_reaches_a_path": "names",
    "test_client.py::test_malformed_names_are_rejected_before_any_path_is_built": "client",
    "test_client.py::test_unknown_exchange_symbol_or_timeframe_lists_what_exists": "client",
    "test_client.py::test_bad_ranges_are_clear_errors": "client",
    "live/test_live_e2e.py::test_the_api_checks_every_name_and_speaks_json_csv_and_arrow": "live API",
    "simulator/test_replay_formats.py::test_refuses_with_one_clear_error": "replay files",
    "simulator/test_server_cli.py::test_cli_refuses_non_loopback_and_bad_specs": "simulator CLI",
    "test_entry_points_bad_input.py::test_marketdata_backfill_refuses_bad_input_with_one_error_and_changes_nothing": "CLI backfill",  # noqa: E501
    "test_entry_points_bad_input.py::test_marketdata_serve_refuses_bad_flags_before_fetching_anything": "CLI serve",
    "test_entry_points_bad_input.py::test_marketdata_replay_refuses_bad_input_and_publishes_nothing": "CLI replay",
    "test_entry_points_bad_input.py::test_market_data_client_refuses_bad_arguments_with_one_error": "client",
    "test_entry_points_bad_input.py::test_the_live_api_refuses_bad_path_and_query_parameters_and_serves_on": "live API",  # noqa: E501
    # load
    "storage/test_read_race.py::test_readers_never_fail_while_months_are_rewritten": "readers during writes",
    "storage/test_read_race.py::test_eight_concurrent_client_readers_during_rewrites_all_get_whole_months": "8 readers",
    "objectstore/test_s3_snapshot_reads.py::test_readers_racing_month_rewrites_always_see_a_whole_month": "S3 readers",
    # security basics
    "simulator/test_server_cli.py::test_loopback_only": "loopback",
    "deploy/test_compose.py::test_every_published_port_binds_loopback_unless_told_otherwise": "loopback",
    "deploy/test_compose.py::test_no_secret_has_a_fallback_value": "no default secrets",
    "deploy/test_compose.py::test_the_team_dagster_yaml_reads_credentials_from_the_environment_only": "secrets",
}
