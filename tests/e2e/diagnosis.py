"""What an e2e or fault test prints when it fails: the lab's state around one group, read at that moment.

A failure seen only in CI leaves nothing but its message; this puts in it what the logs would have said: which lab
processes are dead, the group's pods on each cluster (phase, readiness, deletion, node), the VolumeAttachments of
its volumes, and the simulator's last warnings.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clusters.api import PODS, PVCS, VOLUME_ATTACHMENTS
from clusters.registry import ClusterRegistry

if TYPE_CHECKING:
    from tests.e2e.conftest import FullLab

LOG_LINES = 8


def lab_diagnosis(full_lab: FullLab, *groups: str) -> str:
    """A few lines on the lab and the groups' objects; never raises (a failed read is reported as such)."""
    lines = ["--- lab diagnosis ---"]
    lab = full_lab.lab
    for name, cluster in lab.clusters.items():
        dead = [c for c, alive in cluster.running_components().items() if not alive]
        lines.append(f"{name}: components not running: {', '.join(dead) or 'none'}")
    worker = full_lab.worker
    lines.append(f"worker process: {'running' if worker is not None and worker.poll() is None else 'not running'}")
    registry = ClusterRegistry(full_lab.config.clusters)
    try:
        for group in groups:
            namespace = full_lab.config.group(group).namespace
            for name in lab.clusters:
                lines.extend(_cluster_lines(registry, name, namespace))
    finally:
        registry.close()
    if lab.simulator is not None and lab.simulator.log_file.exists():
        lines.append("simulator log (last warnings):")
        lines.extend(f"  {line}" for line in _last_warnings(lab.simulator.log_file.read_text(errors="replace")))
    return "\n".join(lines)


def _cluster_lines(registry: ClusterRegistry, cluster: str, namespace: str) -> list[str]:
    try:
        api = registry.api(cluster).with_timeout((2.0, 3.0))
        pods = api.list(PODS, namespace)
        volumes = {
            str(pvc.get("spec", {}).get("volumeName")): pvc["metadata"]["name"] for pvc in api.list(PVCS, namespace)
        }
        attachments = [
            va for va in api.list(VOLUME_ATTACHMENTS) if va["spec"]["source"].get("persistentVolumeName") in volumes
        ]
    except Exception as exc:  # the diagnosis of a failure must not fail
        return [f"{cluster}: cannot read {namespace}: {exc}"]
    lines = [f"{cluster}: {len(pods)} pod(s) in {namespace}"]
    lines.extend(f"  {_pod_line(pod)}" for pod in pods)
    lines.append(f"{cluster}: {len(attachments)} VolumeAttachment(s) of {namespace}'s volumes")
    lines.extend(
        f"  {volumes[va['spec']['source']['persistentVolumeName']]} on {va['spec'].get('nodeName')} "
        f"attached={va.get('status', {}).get('attached')} "
        f"deleting={'yes' if va['metadata'].get('deletionTimestamp') else 'no'}"
        for va in attachments
    )
    return lines


def _pod_line(pod: dict[str, Any]) -> str:
    status = pod.get("status", {})
    ready = next((c.get("status") for c in status.get("conditions", []) if c.get("type") == "Ready"), "?")
    deleting = pod["metadata"].get("deletionTimestamp")
    return f"{pod['metadata']['name']} phase={status.get('phase')} ready={ready} node={pod['spec'].get('nodeName')}" + (
        f" deleting since {deleting}" if deleting else ""
    )


def _last_warnings(text: str) -> Iterable[str]:
    levels = (" WARNING ", " ERROR ")
    wanted = [line for line in text.splitlines() if any(lv in line for lv in levels) and "urllib3" not in line]
    return wanted[-LOG_LINES:] or ["(none)"]


def keep_logs(root: Path) -> None:
    """Copy a lab's logs beside it (``<root>-logs``, in pytest's temporary folder) before the lab is purged."""

    def not_logs(folder: str, names: list[str]) -> list[str]:
        return [n for n in names if not n.endswith(".log") and not (Path(folder) / n).is_dir()]

    shutil.copytree(root, root.with_name(root.name + "-logs"), ignore=not_logs, dirs_exist_ok=True)
