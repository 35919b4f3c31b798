"""The measuring harness behind ``make bench`` (see docs/BENCHMARKS.md). Not part of the package."""
