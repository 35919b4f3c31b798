"""Tests of the pure quality core (schemas, dedupe, quarantine, gaps, continuity)."""
