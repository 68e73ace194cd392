"""Temporal workflows and the models that cross the Temporal boundary (no I/O imports)."""
