"""How activities find a group: by name, in the worker's own configuration.

Workflow inputs name a group; nothing an activity acts on (namespace, workloads, replication objects, hook URLs)
comes from a client. The worker passes a :data:`GroupLookup` that reads its configuration (and follows edits of
its file); an unknown name is a permanent failure.
"""

from __future__ import annotations

from collections.abc import Callable

from clusters.errors import PermanentError
from clusters.workloads import WorkloadRef
from workflows.groups import GroupConfig, WorkloadConfig

GroupLookup = Callable[[str], GroupConfig]
"""The worker's configuration, by group name; raises :class:`GroupNotConfiguredError` for an unknown one."""


class GroupNotConfiguredError(PermanentError):
    """The worker's configuration has no group of that name (the workflow was started for another config)."""


def static_lookup(groups: tuple[GroupConfig, ...] | list[GroupConfig]) -> GroupLookup:
    """A lookup over a fixed list of groups (tests, benchmarks)."""
    by_name = {g.name: g for g in groups}

    def lookup(name: str) -> GroupConfig:
        try:
            return by_name[name]
        except KeyError:
            known = ", ".join(sorted(by_name)) or "none"
            raise GroupNotConfiguredError(f"unknown group {name!r}: this worker's configuration has {known}") from None

    return lookup


def workload_ref(workload: WorkloadConfig) -> WorkloadRef:
    """The cluster-level reference of a configured workload."""
    return WorkloadRef(kind=workload.kind, name=workload.name)
