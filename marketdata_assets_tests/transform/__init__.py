"""Tests of the pure transforms (resampling, DVOL)."""
