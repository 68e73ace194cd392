"""The orchestrator's configuration: one YAML file, validated by pydantic, errors reported with file, line and field.

The file is found through ``--config``, else ``$ORCHESTRATE_CONFIG``, else ``./orchestrate.yaml``, else the user's
``$XDG_CONFIG_HOME/failover-orchestrator/orchestrate.yaml`` (``~/.config/...``; the local lab links its demo
configuration there while it runs). Roles are never configured: they are read from the clusters.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from clusters.registry import ClusterConfig
from orchestrate.alerts.rules import AlertSettings, Approval
from workflows.groups import GroupConfig

CONFIG_ENV = "ORCHESTRATE_CONFIG"
DEFAULT_CONFIG = Path("orchestrate.yaml")


def user_config_path() -> Path:
    """The user's configuration file: ``$XDG_CONFIG_HOME/failover-orchestrator/orchestrate.yaml``."""
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "failover-orchestrator" / "orchestrate.yaml"


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


class OrchestratorConfig(_Model):
    """The whole file."""

    temporal: TemporalSettings = TemporalSettings()
    clusters: tuple[ClusterConfig, ...]
    groups: tuple[GroupConfig, ...] = ()
    alerts: AlertSettings = AlertSettings()

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
        self._check_alert_rules()
        return self

    def _check_alert_rules(self) -> None:
        rule_names = [r.name for r in self.alerts.rules]
        if len(set(rule_names)) != len(rule_names):
            raise ValueError("alerts.rules: rule names must be unique")
        groups = {g.name: g for g in self.groups}
        sites = {c.site for c in self.clusters}
        for rule in self.alerts.rules:
            if rule.group is not None and rule.group not in groups:
                raise ValueError(
                    f"alerts.rules: rule {rule.name} names unknown group {rule.group!r}; "
                    f"known groups: {', '.join(groups) or 'none'}"
                )
            if rule.group is not None and rule.away_from is not None:
                here = [c for c in groups[rule.group].clusters if self.cluster(c).site == rule.away_from]
                if len(here) != 1:
                    raise ValueError(
                        f"alerts.rules: rule {rule.name}: away_from {rule.away_from!r} must be the site of exactly one "
                        f"of group {rule.group}'s clusters ({', '.join(groups[rule.group].clusters)})"
                    )
            if rule.site is not None and rule.site not in sites:
                raise ValueError(
                    f"alerts.rules: rule {rule.name} names unknown site {rule.site!r}; known sites: "
                    f"{', '.join(sorted(sites))}"
                )
            if rule.approval is not Approval.AUTOMATIC:
                continue
            moved = [groups[rule.group]] if rule.group is not None else list(self.groups_in_site(rule.site or ""))
            strict = [g.name for g in moved if g.approval.alert_triggered]
            if strict:
                raise ValueError(
                    f"alerts.rules: rule {rule.name} says approval: automatic, but {', '.join(strict)} require(s) "
                    "approval for alert-triggered operations (the worker enforces it); set approval.alert_triggered: "
                    "false on the group to let alerts move it without a human"
                )

    def groups_in_site(self, site: str) -> list[GroupConfig]:
        """The groups with a cluster in ``site`` (those a site failover of it may move)."""
        clusters = {c.name for c in self.clusters if c.site == site}
        return [g for g in self.groups if clusters.intersection(g.clusters)]

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
    """The configuration file to use.

    ``explicit``, else ``$ORCHESTRATE_CONFIG``, else ``./orchestrate.yaml``, else the user's file (where
    ``orchestrate sandbox up`` links the lab's, so that every command then works without options).
    """
    if explicit is not None:
        return explicit
    from_env = os.environ.get(CONFIG_ENV)
    if from_env:
        return Path(from_env)
    if DEFAULT_CONFIG.exists():
        return DEFAULT_CONFIG
    user = user_config_path()
    return user if user.exists() else DEFAULT_CONFIG


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
