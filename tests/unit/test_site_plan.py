"""Unit: the site failover's plan (activity ``plan_site``) over three sites, with fake clusters.

Covers: every group with its primary in the site moves to its other cluster; with ``to_site`` only the groups whose
other cluster is in that site move, the others are skipped with the reason (and their roles are not even read);
a group already moved away and a group with both clusters in the site are skipped as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from activities.site import SiteActivities
from adapters.base import Backend, ReplicationStatus, Role
from workflows.groups import GroupConfig, ReplicationConfig, WorkloadConfig
from workflows.models import RolesInput, RolesReport
from workflows.site.models import SiteInput

SITES = {"east": ("dc1",), "west": ("dc2",), "north": ("dc3",)}


def _group(name: str, clusters: tuple[str, str]) -> GroupConfig:
    return GroupConfig(
        name=name,
        namespace=name,
        backend=Backend.CSI_ADDONS,
        clusters=clusters,
        replication=ReplicationConfig(name="postgres"),
        workloads=(WorkloadConfig(kind="StatefulSet", name="postgres", replicas=1),),
    )


GROUPS = (
    _group("to-west", ("dc1", "dc2")),
    _group("to-north", ("dc1", "dc3")),
    _group("moved", ("dc2", "dc1")),
    _group("elsewhere", ("dc2", "dc3")),
)
PRIMARY_ON = {"to-west": "dc1", "to-north": "dc1", "moved": "dc2", "elsewhere": "dc2"}


class Directory:
    def site_clusters(self, site: str) -> tuple[str, ...]:
        return SITES.get(site, ())

    def all_groups(self) -> Sequence[GroupConfig]:
        return GROUPS


class Api:
    def ping(self) -> None:
        return None


class Registry:
    def api(self, cluster: str) -> Api:
        return Api()


class Failover:
    """The part of the group activities that planning uses: pings and role observations."""

    def __init__(self) -> None:
        self.registry = Registry()
        self.observed: list[str] = []

    def observe_roles(self, request: RolesInput) -> RolesReport:
        self.observed.append(request.group)
        group = next(g for g in GROUPS if g.name == request.group)
        return RolesReport(
            statuses={
                c: ReplicationStatus(
                    cluster=c,
                    backend=Backend.CSI_ADDONS,
                    role=Role.PRIMARY if c == PRIMARY_ON[group.name] else Role.SECONDARY,
                    current=True,
                    completed=True,
                    healthy=True,
                    replicating=True,
                    syncing=False,
                )
                for c in group.clusters
            }
        )


def _plan(to_site: str | None) -> tuple[Any, Failover]:
    failover = Failover()
    activities = SiteActivities(failover, Directory(), client=None)
    return activities.plan_site(SiteInput(site="east", to_site=to_site)), failover


def test_every_group_with_its_primary_in_the_site_moves_to_its_other_cluster() -> None:
    plan, _ = _plan(None)
    assert sorted((g.group, g.target) for g in plan.groups) == [("to-north", "dc3"), ("to-west", "dc2")]
    assert {s.group: s.reason for s in plan.skipped} == {"moved": "its primary is already dc2"}


def test_to_site_moves_only_the_groups_whose_other_cluster_is_there() -> None:
    plan, failover = _plan("west")
    assert [(g.group, g.target) for g in plan.groups] == [("to-west", "dc2")]
    skipped = {s.group: s.reason for s in plan.skipped}
    assert skipped["to-north"] == "its other cluster dc3 is not in site west"
    assert skipped["moved"] == "its primary is already dc2"
    assert "to-north" not in failover.observed
    assert not any(s.attention for s in plan.skipped)
