"""The entry points a person runs: ``marketdata`` (:mod:`.main`: backfill, catalog, ...), the terminal
backfill that launches Dagster runs (:mod:`.backfill`) and the offline demo (:mod:`.demo`)."""
