"""The one entry point Dagster loads (workspace.yaml, [tool.dagster]): builds Definitions from settings."""

from dagster import Definitions

defs = Definitions()
