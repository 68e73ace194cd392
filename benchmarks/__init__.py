"""Benchmarks: print figures, assert nothing (speed is measured here, never in tests)."""
