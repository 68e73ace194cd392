"""A protection group's configuration (pure pydantic, no I/O).

Loaded from the configuration file by :mod:`orchestrate.config`. A workflow's input names its group; the worker
resolves the name from its own configuration (``resolve_group``), so the group's namespace, workloads and hook URLs
always come from the worker's file. Nothing here holds a secret: hook headers are references to environment
variables or files, read by the activity that calls the hook.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from adapters.base import Backend, ReplicationTarget

_DURATION = re.compile(r"^\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+(?:\.\d+)?)s)?\s*$")


def parse_duration(value: Any) -> Any:
    """Accept ``90s``, ``5m``, ``1h30m`` or a number of seconds; leave anything else for pydantic to reject."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str):
        if value.startswith("P"):
            return value  # ISO 8601, as the data converter serialises a timedelta: pydantic parses it
        match = _DURATION.match(value)
        if match and any(match.groups()):
            hours, minutes, seconds = match.groups()
            return timedelta(hours=int(hours or 0), minutes=int(minutes or 0), seconds=float(seconds or 0))
        raise ValueError(f"{value!r} is not a duration (use e.g. 90s, 5m, 1h30m)")
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WorkloadConfig(_Model):
    """A workload to stop before demotion and start after promotion.

    Attributes:
        kind: StatefulSet or Deployment.
        name: its name in the group's namespace.
        replicas: how many replicas it runs on the primary site.
        order: start order (ascending); stopping goes in reverse order.
    """

    kind: Literal["StatefulSet", "Deployment"]
    name: str
    replicas: int = Field(default=1, ge=1)
    order: int = 0


class ReplicationConfig(_Model):
    """The group's replication objects (the same names on both clusters unless overridden).

    Attributes:
        name: the VolumeGroupReplication / VolumeReplication (csi-addons, unified) or DellCSIReplicationGroup
            (powerstore) name.
        single_volume: csi-addons/unified: a single PVC replicated by a VolumeReplication.
        pvcs: the group's PVC names (required for trident: one TridentMirrorRelationship per PVC).
        tmr_names: trident: TMR name per PVC when it differs from the PVC name.
        snapshot_class: trident: VolumeSnapshotClass for the planned failover's snapshot.
        names: per-cluster override of ``name``.
    """

    name: str | None = None
    single_volume: bool = False
    pvcs: tuple[str, ...] = ()
    tmr_names: dict[str, str] = Field(default_factory=dict)
    snapshot_class: str | None = None
    names: dict[str, str] = Field(default_factory=dict)


class StepTimeouts(_Model):
    """How long each step may take before it fails (and, where it can, is compensated)."""

    preflight: Duration = timedelta(minutes=1)
    quiesce: Duration = timedelta(minutes=5)
    demote: Duration = timedelta(minutes=5)
    final_sync: Duration = timedelta(minutes=30)
    promote: Duration = timedelta(minutes=5)
    start: Duration = timedelta(minutes=10)
    hooks: Duration = timedelta(minutes=2)
    reprotect: Duration = timedelta(minutes=30)


class HeaderSource(_Model):
    """Where a hook header's value comes from: exactly one of an environment variable, a file, or a literal.

    Secrets (tokens, API keys) belong in ``env`` or ``file``: only the reference is configured, carried and
    logged; the value is read by the activity when it calls the hook. ``value`` is for what is not secret
    (``Content-Type``).
    """

    env: str | None = None
    file: str | None = None
    value: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> HeaderSource:
        given = [k for k in ("env", "file", "value") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("a header needs exactly one of env: VARIABLE, file: PATH or value: TEXT")
        return self

    def describe(self) -> str:
        """The reference, never the secret (for messages)."""
        if self.env is not None:
            return "$" + self.env
        if self.file is not None:
            return f"file {self.file}"
        return "a literal value"


def _header_reference(value: Any) -> Any:
    if isinstance(value, str):
        raise ValueError(
            "give a reference, not the value: {env: VARIABLE} or {file: PATH} (secrets never go in the "
            "configuration), or {value: TEXT} for a header that is not secret"
        )
    return value


class HookConfig(_Model):
    """An HTTP call made before or after a failover (DNS switch, load balancer, notification)."""

    name: str
    url: str
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    headers: dict[str, Annotated[HeaderSource, BeforeValidator(_header_reference)]] = Field(default_factory=dict)
    timeout: Duration = timedelta(seconds=30)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value


class Hooks(_Model):
    """Hooks run before quiesce (``pre``) and after the application started on the target (``post``)."""

    pre: tuple[HookConfig, ...] = ()
    post: tuple[HookConfig, ...] = ()


class ApprovalPolicy(_Model):
    """When an operation waits for ``orchestrate approve``.

    Attributes:
        planned: planned failovers and failbacks need approval.
        unplanned: unplanned failovers need approval.
        alert_triggered: operations started by an alert need approval (the default: a human confirms).
        timeout: how long an operation waits for approval before it gives up (nothing changed).
    """

    planned: bool = False
    unplanned: bool = False
    alert_triggered: bool = True
    timeout: Duration = timedelta(hours=1)

    def required(self, *, unplanned: bool, alert: bool) -> bool:
        """Whether an operation of this kind waits for ``approve`` before it changes anything."""
        if alert and self.alert_triggered:
            return True
        return self.unplanned if unplanned else self.planned


class LossDetection(_Model):
    """When the source site counts as lost for an unplanned failover.

    Attributes:
        probes: how many reachability probes must all fail (connection refused or timed out).
        window: over how long they are spread.
    """

    probes: int = Field(default=3, ge=1, le=20)
    window: Duration = timedelta(seconds=6)


class GroupConfig(_Model):
    """A protection group: the PVCs of one application that fail over together, and its workloads."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")]
    namespace: str
    backend: Backend
    clusters: tuple[str, str]
    replication: ReplicationConfig
    workloads: tuple[WorkloadConfig, ...] = ()
    rpo: Duration = timedelta(minutes=5)
    timeouts: StepTimeouts = StepTimeouts()
    hooks: Hooks = Hooks()
    approval: ApprovalPolicy = ApprovalPolicy()
    loss_detection: LossDetection = LossDetection()
    priority: int = Field(default=100, ge=0)
    monitor_interval: Duration = timedelta(seconds=30)

    @model_validator(mode="after")
    def _backend_needs(self) -> GroupConfig:
        if self.clusters[0] == self.clusters[1]:
            raise ValueError("clusters: a group needs two different clusters")
        if self.backend in (Backend.CSI_ADDONS, Backend.UNIFIED, Backend.POWERSTORE) and not (
            self.replication.name or len(self.replication.names) == 2
        ):
            raise ValueError(f"replication.name: required for backend {self.backend.value}")
        if self.backend is Backend.TRIDENT and not self.replication.pvcs:
            raise ValueError("replication.pvcs: required for backend trident (one TridentMirrorRelationship per PVC)")
        return self

    def replication_name(self, cluster: str) -> str | None:
        """The replication object's name on ``cluster``."""
        return self.replication.names.get(cluster, self.replication.name)

    def replication_target(self, cluster: str) -> ReplicationTarget:
        """The adapter's view of this group's replication objects on ``cluster``."""
        return ReplicationTarget(
            backend=self.backend,
            namespace=self.namespace,
            name=self.replication_name(cluster),
            single_volume=self.replication.single_volume,
            pvc_names=self.replication.pvcs,
            tmr_names=self.replication.tmr_names,
            snapshot_class=self.replication.snapshot_class,
        )

    def hook(self, stage: str, name: str) -> HookConfig | None:
        """The ``stage`` (``pre`` or ``post``) hook called ``name``."""
        hooks = self.hooks.pre if stage == "pre" else self.hooks.post
        return next((h for h in hooks if h.name == name), None)

    def peer_of(self, cluster: str) -> str:
        """The group's other cluster."""
        first, second = self.clusters
        return second if cluster == first else first
