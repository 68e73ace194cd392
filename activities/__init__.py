"""Temporal activities: thin; resolve the adapter/cluster, call it, map errors at one boundary."""
