"""The CSI attacher: a VolumeAttachment per PV used by a scheduled pod, deleted shortly after no pod uses it.

kwok binds the lab's PVCs but attaches nothing; the orchestrator's quiesce waits for VolumeAttachments to go, and
the ``refuse-demote-in-use`` fault checks them, so the simulator creates them the way the external-attacher does
(name ``csi-<sha256(pv + attacher + node)>``, ``status.attached: true``) for its own attacher only.
"""

from __future__ import annotations

import hashlib
import logging
from typing import ClassVar

from clusters.api import JsonObject, Resource
from clusters.errors import ClusterUnreachableError, OrchestratorError
from sandbox.simulator.controllers.base import Context, Controller
from sandbox.simulator.kube import PODS, VOLUME_ATTACHMENTS, nested
from sandbox.simulator.logs import log_throttled
from sandbox.simulator.model import VolumeKey
from sandbox.simulator.view import ATTACHER, pod_active, pod_claims

log = logging.getLogger(__name__)


def attachment_name(pv: str, node: str) -> str:
    """The external-attacher's VolumeAttachment name for a PV on a node."""
    return "csi-" + hashlib.sha256(f"{pv}{ATTACHER}{node}".encode()).hexdigest()


class AttacherController(Controller):
    """Plays the external-attacher of the ``kwok.x-k8s.io/volume`` driver."""

    resources: ClassVar[tuple[Resource, ...]] = ()

    def __init__(self) -> None:
        self._unused_since: dict[tuple[str, str], float] = {}

    def reconcile(self, ctx: Context) -> None:
        """Create, mark attached and (after ``detach_delay`` unused) delete this cluster's VolumeAttachments."""
        wanted: dict[str, tuple[str, str]] = {}
        for pod in ctx.view.items(PODS):
            node = nested(pod, "spec", "nodeName")
            if not node or not pod_active(pod):
                continue
            for claim in pod_claims(pod):
                pv = nested(ctx.view.pvc(VolumeKey(pod["metadata"]["namespace"], claim)), "spec", "volumeName")
                if pv:
                    wanted[attachment_name(pv, node)] = (pv, node)
        existing = {
            va["metadata"]["name"]: va
            for va in ctx.view.items(VOLUME_ATTACHMENTS)
            if nested(va, "spec", "attacher") == ATTACHER
        }
        for name, (pv, node) in wanted.items():
            self._unused_since.pop((ctx.cluster, name), None)
            try:
                self._attach(ctx, name, pv, node, existing.get(name))
            except ClusterUnreachableError:
                raise
            except OrchestratorError as exc:
                log_throttled(log, logging.WARNING, "%s: attaching %s failed: %s", ctx.cluster, pv, exc)
        for name in existing.keys() - wanted.keys():
            since = self._unused_since.get((ctx.cluster, name))
            if since is None:
                since = self._unused_since[(ctx.cluster, name)] = ctx.now
                ctx.due(since + ctx.config.detach_delay)
            if ctx.now - since >= ctx.config.detach_delay:
                try:
                    ctx.api.delete(VOLUME_ATTACHMENTS, name)
                except ClusterUnreachableError:
                    raise
                except OrchestratorError as exc:
                    log_throttled(log, logging.WARNING, "%s: detaching %s failed: %s", ctx.cluster, name, exc)
                    continue
                self._unused_since.pop((ctx.cluster, name), None)
                log.info("%s: detached %s", ctx.cluster, name)
        live = {(ctx.cluster, name) for name in existing}
        for key in [k for k in self._unused_since if k[0] == ctx.cluster and k not in live]:
            del self._unused_since[key]

    def _attach(self, ctx: Context, name: str, pv: str, node: str, attachment: JsonObject | None) -> None:
        if attachment is None:
            body = {
                "metadata": {"name": name},
                "spec": {"attacher": ATTACHER, "nodeName": node, "source": {"persistentVolumeName": pv}},
            }
            attachment = ctx.api.create(VOLUME_ATTACHMENTS, body)
            log.info("%s: attached %s to %s (%s)", ctx.cluster, pv, node, name)
        if nested(attachment, "status", "attached") is not True:
            ctx.api.patch(VOLUME_ATTACHMENTS, name, {"status": {"attached": True}}, subresource="status")
