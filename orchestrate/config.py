"""The orchestrator's configuration: one YAML file, validated by pydantic, errors reported with file, line and field.

The file is found through ``--config``, else ``$ORCHESTRATE_CONFIG``, else ``./orchestrate.yaml``; the lab writes
one for its demo groups. Roles are never configured: they are read from the clusters.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from adapters.base import Backend
from clusters.registry import ClusterConfig

CONFIG_ENV = "ORCHESTRATE_CONFIG"
DEFAULT_CONFIG = Path("orchestrate.yaml")

_DURATION = re.compile(r"^\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+(?:\.\d+)?)s)?\s*$")


def parse_duration(value: Any) -> Any:
    """Accept ``90s``, ``5m``, ``1h30m`` or a number of seconds; leave anything else for pydantic to reject."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match and any(match.groups()):
            hours, minutes, seconds = match.groups()
            return timedelta(hours=int(hours or 0), minutes=int(minutes or 0), seconds=float(seconds or 0))
        raise ValueError(f"{value!r} is not a duration (use e.g. 90s, 5m, 1h30m)")
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TemporalTls(_Model):
    """mTLS to a Temporal cluster (self-hosted or Temporal Cloud)."""

    client_cert: Path
    client_key: Path
    server_ca: Path | None = None
    server_name: str | None = None


class TemporalSettings(_Model):
    """Where the orchestrator's workflows run."""

    address: str = "127.0.0.1:7233"
    namespace: str = "default"
    task_queue: str = "failover-orchestrator"
    tls: TemporalTls | None = None
    api_key: str | None = Field(default=None, description="Temporal Cloud API key (or $TEMPORAL_API_KEY)")


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


class HookConfig(_Model):
    """An HTTP call made before or after a failover (DNS switch, load balancer, notification)."""

    name: str
    url: str
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
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
    """

    planned: bool = False
    unplanned: bool = False
    alert_triggered: bool = True


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
    priority: int = Field(default=100, ge=0)

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

    def peer_of(self, cluster: str) -> str:
        """The group's other cluster."""
        first, second = self.clusters
        return second if cluster == first else first


class OrchestratorConfig(_Model):
    """The whole file."""

    temporal: TemporalSettings = TemporalSettings()
    clusters: tuple[ClusterConfig, ...]
    groups: tuple[GroupConfig, ...] = ()

    @model_validator(mode="after")
    def _references(self) -> OrchestratorConfig:
        cluster_names = [c.name for c in self.clusters]
        if len(set(cluster_names)) != len(cluster_names):
            raise ValueError("clusters: cluster names must be unique")
        group_names = [g.name for g in self.groups]
        if len(set(group_names)) != len(group_names):
            raise ValueError("groups: group names must be unique")
        for group in self.groups:
            unknown = [c for c in group.clusters if c not in cluster_names]
            if unknown:
                raise ValueError(
                    f"groups: group {group.name} names unknown cluster(s) {', '.join(unknown)}; "
                    f"known clusters: {', '.join(cluster_names)}"
                )
        return self

    def group(self, name: str) -> GroupConfig:
        """The group called ``name``; :class:`UnknownGroupError` lists the known ones."""
        for group in self.groups:
            if group.name == name:
                return group
        raise UnknownGroupError(name, [g.name for g in self.groups])

    def cluster(self, name: str) -> ClusterConfig:
        """The cluster called ``name``."""
        for cluster in self.clusters:
            if cluster.name == name:
                return cluster
        raise ConfigError(f"unknown cluster {name!r}; known clusters: {', '.join(c.name for c in self.clusters)}")


class ConfigError(Exception):
    """The configuration cannot be used; the message names the file, line and field."""


class UnknownGroupError(ConfigError):
    """A command named a group the configuration does not have."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        super().__init__(f"unknown group {name!r}; known groups: {', '.join(known) or 'none configured'}")


def config_path(explicit: Path | None = None) -> Path:
    """The configuration file to use: ``explicit``, ``$ORCHESTRATE_CONFIG`` or ``./orchestrate.yaml``."""
    if explicit is not None:
        return explicit
    from_env = os.environ.get(CONFIG_ENV)
    return Path(from_env) if from_env else DEFAULT_CONFIG


def load_config(path: Path | None = None) -> OrchestratorConfig:
    """Read and validate the configuration.

    Raises:
        ConfigError: the file is missing, is not YAML, or fails validation (with file, line and field).
    """
    path = config_path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot read the configuration ({exc.strerror}); pass --config or set {CONFIG_ENV}"
        ) from exc
    return parse_config(text, path)


def parse_config(text: str, path: Path) -> OrchestratorConfig:
    """Validate configuration ``text`` read from ``path`` (relative kubeconfig paths are resolved against it)."""
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}{line}: not valid YAML: {problem}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: the configuration must be a mapping with 'clusters' and 'groups'")
    for cluster in data.get("clusters") or []:
        if isinstance(cluster, dict) and isinstance(cluster.get("kubeconfig"), str):
            kubeconfig = Path(os.path.expanduser(cluster["kubeconfig"]))
            cluster["kubeconfig"] = str(kubeconfig if kubeconfig.is_absolute() else path.parent / kubeconfig)
    try:
        return OrchestratorConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            location = tuple(error["loc"])
            field = ".".join(str(part) for part in location) or "(top level)"
            problems.append(f"{path}:{_line_of(root, location)}: {field}: {error['msg']}")
        raise ConfigError("\n".join(problems)) from exc


def _line_of(root: yaml.Node | None, location: tuple[Any, ...]) -> int:
    """The 1-based line of the deepest YAML node along ``location`` (pydantic's error path)."""
    node = root
    line = 1
    for part in location:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            node = next((value for key, value in node.value if key.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            node = None
    if node is not None:
        line = node.start_mark.line + 1
    return line
