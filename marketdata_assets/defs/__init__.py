"""The Dagster layer: thin asset definitions that call the pure core."""
