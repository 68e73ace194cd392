"""Helpers of the adapters' lab tests: one demo group per test, its adapters on dc1 and dc2, and its ledger.

A :class:`Scenario` is one :class:`~sandbox.demo.DemoGroup` (StatefulSet ``postgres``, PVCs ``data``/``wal``/
``config-postgres-0`` on both clusters, the backend's replication objects; dc1 the primary) in a namespace of its
own, driven only through the adapter API (:func:`adapters.registry.adapter_for`, :func:`adapters.waiting.
wait_for_status`) and checked against the storage simulator's ledger. The planned sequence here is the generic
one the workflow runs for every backend: quiesce, demote, final sync, sync point, promote, start, reprotect.
"""

from __future__ import annotations

import contextlib
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx

from adapters.base import Backend, ReplicationAdapter, ReplicationStatus, ReplicationTarget, SyncPoint, WriteResult
from adapters.registry import adapter_for
from adapters.trident import TridentAdapter
from adapters.waiting import Predicate, wait_for_status
from clusters.api import NAMESPACES, ClusterApi, Resource
from clusters.errors import BackendFailedError, OrchestratorError, RetryableError
from clusters.workloads import WorkloadRef, read_workload, scale_workload, volumes_in_use
from sandbox.cluster import LabCluster
from sandbox.demo import APP, DELL_RG, DemoGroup, install_group
from sandbox.simulator.client import SimulatorClient
from sandbox.simulator.schemas import VolumeLedger
from sandbox.simulator.testing import wait_for

T = TypeVar("T")

SOURCE, TARGET = "dc1", "dc2"
CLUSTERS = (SOURCE, TARGET)
POSTGRES = WorkloadRef(kind="StatefulSet", name=APP)
SHORT = {Backend.CSI_ADDONS: "csi", Backend.UNIFIED: "uni", Backend.TRIDENT: "tri", Backend.POWERSTORE: "dell"}

WAIT = 20.0
"""Seconds for a wait that must succeed (the simulator's latencies are fractions of a second)."""
FAIL_WAIT = 2.0
"""Seconds for a wait that must time out (the fault holds): short, so the suite stays fast."""
APPEAR = 10.0
"""Seconds for a fault's condition to show in the adapter's observation."""
KWOK_TIMEOUT = 60.0
"""kwok (the lab's kubelet) starts and removes pods with delays of a few seconds."""
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
"""What ``kubectl get`` asks for: the server renders the CRD's printer columns."""


def target_for(group: DemoGroup) -> ReplicationTarget:
    """The group's replication objects as :func:`sandbox.demo.demo_config` configures them (same on both sides)."""
    if group.backend is Backend.TRIDENT:
        return ReplicationTarget(
            backend=group.backend, namespace=group.namespace, pvc_names=group.pvcs, snapshot_class="trident-snapshots"
        )
    return ReplicationTarget(
        backend=group.backend, namespace=group.namespace, name=group.replication_name, pvc_names=group.pvcs
    )


def truncated(moment: datetime) -> datetime:
    """A time as Kubernetes stores it (``metav1.Time``: whole seconds, UTC)."""
    return moment.astimezone(UTC).replace(microsecond=0)


def group_last_shipment(volumes: list[VolumeLedger]) -> datetime | None:
    """The oldest last shipment of the volumes (what the whole group is known to have shipped)."""
    times = [volume.last_shipment for volume in volumes]
    return None if any(t is None for t in times) else min(t for t in times if t is not None)


@dataclass
class Scenario:
    """One demo group of one backend, its adapters and the simulator's view of it.

    Attributes:
        group: the demo group (its namespace is its name).
        apis: a :class:`ClusterApi` per cluster used by the adapters and the test (``.writes`` counts writes).
        client: the simulator's control client.
        clusters: the lab clusters (raw HTTP for tables, API server outages).
    """

    group: DemoGroup
    apis: dict[str, ClusterApi]
    client: SimulatorClient
    clusters: dict[str, LabCluster]
    _adapters: dict[str, ReplicationAdapter] = field(default_factory=dict)

    # ------------------------------------------------------------------------------------------------ basics

    @property
    def backend(self) -> Backend:
        """The group's backend."""
        return self.group.backend

    @property
    def namespace(self) -> str:
        """The group's namespace (also its fault-group name in the simulator)."""
        return self.group.namespace

    def adapter(self, cluster: str) -> ReplicationAdapter:
        """The group's adapter on ``cluster`` (one per cluster, picked by the registry)."""
        if cluster not in self._adapters:
            self._adapters[cluster] = adapter_for(self.apis[cluster], target_for(self.group))
        return self._adapters[cluster]

    @property
    def source(self) -> ReplicationAdapter:
        """dc1's adapter (the initial primary)."""
        return self.adapter(SOURCE)

    @property
    def target(self) -> ReplicationAdapter:
        """dc2's adapter (the initial secondary)."""
        return self.adapter(TARGET)

    def writes(self) -> int:
        """Write requests sent so far through both clusters' APIs."""
        return sum(api.writes for api in self.apis.values())

    def install(self) -> None:
        """Create the group on both clusters and wait until dc1 is a promoted Primary and dc2 follows it."""
        install_group(self.apis, self.group, SOURCE, TARGET)
        self.wait(self.source, self.source.promoted, "dc1 primary")
        self.wait(self.target, self.target.resync_complete, "dc2 following dc1")

    def cleanup(self) -> None:
        """Stop the workloads (so that the simulator detaches their volumes) and delete the group's objects."""
        for cluster, api in self.apis.items():
            with contextlib.suppress(OrchestratorError, TimeoutError):
                api.ping()
                if not volumes_in_use(api, self.namespace, self.group.pvcs).idle:
                    self.quiesce(cluster, timeout=30.0)
            with contextlib.suppress(OrchestratorError):
                if self.backend is Backend.POWERSTORE:
                    api.delete(DELL_RG, self.group.replication_name)
                api.delete(NAMESPACES, self.namespace)

    # ------------------------------------------------------------------------------------------------ calling

    @staticmethod
    def call(request: Callable[[], T], timeout: float = 10.0) -> T:
        """Make an adapter request, repeating it on a retryable error as the activities' retry policy does.

        The Dell and Trident adapters guard their patches with the resourceVersion they read, so a status the
        controller writes in between (the simulator rewrites an RG's link state every shipment) is a 409
        :class:`~clusters.errors.ConflictError`: retryable by design.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                return request()
            except RetryableError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)

    # ------------------------------------------------------------------------------------------------ waiting

    def wait(
        self,
        adapter: ReplicationAdapter,
        predicate: Predicate,
        what: str,
        timeout: float = WAIT,
        seen: list[ReplicationStatus] | None = None,
    ) -> ReplicationStatus:
        """:func:`wait_for_status` with a fast poll; every observation is appended to ``seen`` when given."""
        return wait_for_status(
            adapter,
            predicate,
            what=what,
            timeout=timeout,
            interval=0.1,
            progress=seen.append if seen is not None else None,
        )

    def expect_failure(
        self, adapter: ReplicationAdapter, predicate: Predicate, what: str, shows: str, timeout: float = FAIL_WAIT
    ) -> BackendFailedError:
        """Wait for something a fault prevents; the :class:`BackendFailedError` the wait ends with.

        First waits (up to :data:`APPEAR`: the simulator may be slow on a loaded machine) until the adapter reports
        ``shows`` in its message or failure, then runs the real wait with the short ``timeout``: a permanent
        failure must end it at once, a retried one at ``timeout``, and either way its error must name ``shows``.
        """
        deadline = time.monotonic() + APPEAR
        while shows not in (reported := self._reported(adapter)):
            if time.monotonic() >= deadline:
                raise AssertionError(f"{adapter.cluster} never reported {shows!r} for {what}; last: {reported}")
            time.sleep(0.1)
        try:
            status = self.wait(adapter, predicate, what, timeout=timeout)
        except BackendFailedError as exc:
            assert shows in str(exc), f"the error does not name {shows!r}: {exc}"
            return exc
        raise AssertionError(f"{what} was reached despite the fault: {status.message}")

    @staticmethod
    def _reported(adapter: ReplicationAdapter) -> str:
        status = adapter.observe()
        return f"{status.message} | failure: {status.failure}"

    # ------------------------------------------------------------------------------------------------ workloads

    def quiesce(self, cluster: str, timeout: float = KWOK_TIMEOUT) -> None:
        """Scale the StatefulSet to 0 and wait until no pod uses the PVCs and no VolumeAttachment remains."""
        api = self.apis[cluster]
        scale_workload(api, self.namespace, POSTGRES, 0)
        wait_for(
            lambda: volumes_in_use(api, self.namespace, self.group.pvcs).idle,
            f"{cluster} volumes of {self.namespace} idle",
            timeout,
            interval=0.2,
        )

    def start(self, cluster: str) -> None:
        """Scale the StatefulSet to 1 and wait until its pod is ready (the simulator then writes for it)."""
        api = self.apis[cluster]
        scale_workload(api, self.namespace, POSTGRES, 1)
        self.wait_ready(cluster)

    def wait_ready(self, cluster: str) -> None:
        """Wait until the StatefulSet's one replica is ready."""
        api = self.apis[cluster]
        wait_for(
            lambda: (state := read_workload(api, self.namespace, POSTGRES)).settled and state.ready == 1,
            f"{cluster} {POSTGRES} ready",
            KWOK_TIMEOUT,
            interval=0.2,
        )

    # ------------------------------------------------------------------------------------------------ ledger

    def volumes(self) -> list[VolumeLedger]:
        """The ledger of the group's PVCs, in PVC order."""
        ledger = self.client.ledger(self.namespace)
        return [ledger.volume(self.namespace, pvc) for pvc in self.group.pvcs]

    def wait_volumes(
        self, check: Callable[[VolumeLedger], bool], what: str, timeout: float = WAIT
    ) -> list[VolumeLedger]:
        """Wait until ``check`` holds for the ledger of every volume of the group; those ledgers."""

        def probe() -> list[VolumeLedger] | None:
            volumes = self.volumes()
            return volumes if all(check(volume) for volume in volumes) else None

        return wait_for(probe, f"{self.namespace}: {what}", timeout, interval=0.1)

    def wait_acknowledged(self, minimum: int = 1) -> list[VolumeLedger]:
        """Wait until every volume has at least ``minimum`` acknowledged writes (the pod writes while ready)."""
        return self.wait_volumes(lambda v: v.acknowledged >= minimum, f"{minimum} acknowledged write(s)", KWOK_TIMEOUT)

    def write(self, cluster: str, count: int) -> None:
        """Acknowledge ``count`` writes on every volume through the control API (no pod needed)."""
        for pvc in self.group.pvcs:
            assert self.client.write(self.namespace, pvc, cluster, count).acknowledged == count

    def add_fault(self, kind: str, cluster: str, *, times: int | None = None, permanent: bool = False) -> None:
        """Inject a fault for this group on ``cluster``."""
        self.client.add_fault(self.namespace, kind, cluster=cluster, times=times, permanent=permanent)

    def remove_faults(self) -> None:
        """Remove every fault of this group."""
        self.client.remove_faults(self.namespace)

    def fired(self, kind: str) -> int:
        """How often this group's faults of ``kind`` fired."""
        return sum(f.fired for f in self.client.faults() if f.group == self.namespace and f.kind == kind)

    # ------------------------------------------------------------------------------------------------ steps

    def prepare_sync_point(self, adapter: ReplicationAdapter, operation_id: str | None = None) -> SyncPoint | None:
        """:meth:`ReplicationAdapter.prepare_sync_point`, polling Trident's snapshots quickly."""
        if isinstance(adapter, TridentAdapter):
            return adapter.prepare_sync_point(operation_id=operation_id, timeout=WAIT, interval=0.1)
        return adapter.prepare_sync_point()

    def transfer_sync_point(self, sync_point: SyncPoint | None) -> WriteResult | None:
        """:meth:`ReplicationAdapter.transfer_sync_point` on dc2 (Trident's mirror updates), when there is one."""
        if sync_point is None:
            return None
        return self.call(lambda: self.target.transfer_sync_point(sync_point, timeout=WAIT))

    def planned_handover(self) -> ReplicationStatus:
        """dc1 to dc2 with dc1 already quiesced: demote, final sync, sync point (transferred), promote."""
        source, target = self.source, self.target
        self.call(lambda: source.demote(peer=target))
        self.wait(source, source.final_sync_complete, "final sync complete")
        sync_point = self.call(lambda: self.prepare_sync_point(source))
        self.transfer_sync_point(sync_point)
        self.call(lambda: target.promote(force=False, sync_point=sync_point, peer=source))
        return self.wait(target, target.promoted, "dc2 promoted")

    def reprotect_source(self, *, resync: bool) -> WriteResult:
        """dc1 follows dc2 again: reprotect, wait until it has caught up and dc2 has settled."""
        result = self.call(lambda: self.source.reprotect(resync=resync, peer=self.target))
        self.settle_reprotect()
        return result

    def settle_reprotect(self) -> None:
        """Wait until dc1 follows dc2 and dc2 is a settled Primary.

        Dell runs the re-protection as REPROTECT_LOCAL on dc2's RG: dc1's link reads SYNCHRONIZED a moment before
        dc2's RG records the action as done (and meanwhile refuses another request with NotReadyError).
        """
        self.wait(self.source, self.source.resync_complete, "dc1 resync complete")
        self.wait(self.target, self.target.promoted, "dc2 settled as Primary")

    # ------------------------------------------------------------------------------------------------ tables

    def table(self, cluster: str, resource: Resource) -> dict[str, Any]:
        """``kubectl get``: the collection (this namespace, or all of a cluster-scoped kind) as a server Table."""
        lab_cluster = self.clusters[cluster]
        context = ssl.create_default_context(cafile=str(lab_cluster.pki.ca_cert))
        context.load_cert_chain(str(lab_cluster.pki.admin_cert), str(lab_cluster.pki.admin_key))
        path = resource.path(self.namespace if resource.namespaced else None)
        with httpx.Client(verify=context, timeout=10.0) as http:
            response = http.get(lab_cluster.server + path, headers={"Accept": TABLE})
        response.raise_for_status()
        table: dict[str, Any] = response.json()
        assert table["kind"] == "Table", table
        return table


def table_rows(table: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each row of a server Table as ``{column name: cell}``, by the row's Name cell."""
    names = [column["name"] for column in table["columnDefinitions"]]
    rows = [dict(zip(names, row["cells"], strict=True)) for row in table["rows"]]
    return {str(row["Name"]): row for row in rows}


def new_group(label: str, backend: Backend) -> DemoGroup:
    """A demo group of a unique name (a namespace, and the Dell RG ``rg-<name>``)."""
    return DemoGroup(f"{label}-{SHORT[backend]}-{uuid.uuid4().hex[:6]}", backend)


def shipment_window(scenario: Scenario, *, earliest: float, latest: float, timeout: float = WAIT) -> list[VolumeLedger]:
    """Wait until the group's last shipment is between ``earliest`` and ``latest`` seconds old, with writes after it.

    With a ``sync_interval`` well above ``latest`` no other shipment can happen for a while: what is observed then
    is the state the last shipment left.
    """

    def inside() -> list[VolumeLedger] | None:
        volumes = scenario.volumes()
        shipped = group_last_shipment(volumes)
        if shipped is None:
            return None
        age = (datetime.now(UTC) - shipped).total_seconds()
        after = all(v.acknowledged > v.last_shipped_count for v in volumes)
        return volumes if earliest <= age <= latest and after else None

    return wait_for(inside, f"{scenario.namespace}: a fresh shipment with writes after it", timeout, interval=0.05)
