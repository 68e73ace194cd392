"""Shared pytest configuration: the tiers live in tests/unit, tests/workflow and tests/lab."""
