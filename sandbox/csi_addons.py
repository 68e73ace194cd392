"""The upstream csi-addons controllers on one lab cluster: the manager, and the sidecar in front of the driver socket.

What a real cluster has, and how the lab stands in for it (upstream facts: sandbox/real-controllers-research.md):

- The driver's pod: the manager reaches a sidecar only through ``pod://<pod>.<namespace>:<port>``, dialling the
  pod's ``status.podIP``. The stand-in is a one-replica StatefulSet ``csi-rbdplugin-provisioner`` with
  ``hostNetwork`` on the kwok node, whose address is 127.0.0.1, so kwok gives the pod 127.0.0.1 and nothing ever
  dials outside loopback. Each cluster's sidecar listens on a port of its own.
- The sidecar reads its cluster only from the in-cluster files (``/var/run/secrets/kubernetes.io/serviceaccount``
  and ``KUBERNETES_SERVICE_HOST/PORT``). Two clusters' sidecars on one host each get a private mount namespace
  (``unshare --mount``, which needs root) with a tmpfs over ``/var/run`` (where it really points, usually /run)
  holding their own service-account token and CA; the host's files are never touched.
- The replication classes name a Secret (the sidecar fetches it before every call): ``rbd-replication-secret``.
- Both run under a restart loop, as kubelet restarts a pod's containers: the sidecar exits by design when it
  loses its leader lease (an apiserver outage does that), and a real cluster would start it again.
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Any

import httpx

from sandbox.cluster import LabCluster
from sandbox.controller_build import CsiAddonsBuild
from sandbox.controller_stack import RESTART_LOOP, ControllerStack, crd_documents, restarted
from sandbox.processes import LabProcessError, free_port, wait_until

NAMESPACE = "csi-addons-system"
SERVICE_ACCOUNT = "csi-addons"
DRIVER_STATEFULSET = "csi-rbdplugin-provisioner"
DRIVER_POD = f"{DRIVER_STATEFULSET}-0"
REPLICATION_SECRET = "rbd-replication-secret"
MANAGER, SIDECAR = "csi-addons-manager", "csi-addons-sidecar"
PROCESSES = (MANAGER, SIDECAR)
TOKEN_SECONDS = 30 * 24 * 3600
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def _objects(node: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(collection path, name, body) of what the csi-addons stack needs on a cluster, in creation order."""
    labels = {"app": DRIVER_STATEFULSET}
    return [
        ("/api/v1/namespaces", NAMESPACE, {"metadata": {"name": NAMESPACE}}),
        (
            f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts",
            SERVICE_ACCOUNT,
            {"metadata": {"name": SERVICE_ACCOUNT}},
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            "csi-addons-lab",
            {
                "metadata": {"name": "csi-addons-lab"},
                # The sidecar's own RBAC is broad upstream too (deploy/controller/rbac); the lab grants admin.
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}],
            },
        ),
        (
            f"/api/v1/namespaces/{NAMESPACE}/secrets",
            REPLICATION_SECRET,
            {"metadata": {"name": REPLICATION_SECRET}, "stringData": {"userID": "csi-rbd-provisioner"}},
        ),
        (
            f"/apis/apps/v1/namespaces/{NAMESPACE}/statefulsets",
            DRIVER_STATEFULSET,
            {
                "metadata": {"name": DRIVER_STATEFULSET, "labels": labels},
                "spec": {
                    "replicas": 1,
                    "serviceName": DRIVER_STATEFULSET,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "hostNetwork": True,
                            "nodeName": node,
                            "serviceAccountName": SERVICE_ACCOUNT,
                            "containers": [
                                {"name": "csi-rbdplugin", "image": "quay.io/cephcsi/cephcsi:lab"},
                                {"name": "csi-addons", "image": "quay.io/csiaddons/k8s-sidecar:v0.14.0"},
                            ],
                        },
                    },
                },
            },
        ),
    ]


class CsiAddonsStack(ControllerStack):
    """The csi-addons manager and sidecar of one lab cluster, their pids kept in the cluster's state.

    Args:
        cluster: the lab cluster (running).
        build: the built binaries and CRDs.
        driver_socket: the simulator's csi-addons driver socket for this cluster.
    """

    processes = PROCESSES

    def __init__(self, cluster: LabCluster, build: CsiAddonsBuild, driver_socket: Path) -> None:
        super().__init__(cluster)
        self.build = build
        self.driver_socket = driver_socket
        self.folder = cluster.root / "csi-addons"

    # ----------------------------------------------------------------------------------------- install

    def crd_documents(self) -> list[dict[str, Any]]:
        """The CRDs of the built csi-addons version (config/crd/bases)."""
        return crd_documents(self.build.crds)

    def install(self) -> None:
        """Create the namespace, identity, secret and driver pod, and write the sidecar's service-account files."""
        for collection, name, body in _objects(self.cluster.node_name):
            created = self.cluster.request("POST", collection, body)
            if created.status_code not in (201, 409):
                raise LabProcessError(f"{self.cluster.name}: creating {collection}/{name} failed: {created.text}")
        pod_path = f"/api/v1/namespaces/{NAMESPACE}/pods/{DRIVER_POD}"

        def pod_on_loopback() -> bool:
            status = self.cluster.request("GET", pod_path).json().get("status", {})
            return bool(status.get("podIP") == "127.0.0.1" and status.get("phase") == "Running")

        wait_until(pod_on_loopback, f"{self.cluster.name} driver pod {DRIVER_POD} on 127.0.0.1", 60.0)
        token = self.cluster.request(
            "POST",
            f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{SERVICE_ACCOUNT}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": TOKEN_SECONDS},
            },
        )
        if token.status_code != 201:
            raise LabProcessError(f"{self.cluster.name}: token request failed: {token.text}")
        secrets = self.folder / "serviceaccount"
        secrets.mkdir(parents=True, exist_ok=True)
        (secrets / "token").write_text(token.json()["status"]["token"])
        (secrets / "ca.crt").write_bytes(self.cluster.pki.ca_cert.read_bytes())
        (secrets / "namespace").write_text(NAMESPACE)

    @property
    def driver_pod_uid(self) -> str:
        """The stand-in driver pod's UID (the sidecar's ``--pod-uid``)."""
        pod = self.cluster.request("GET", f"/api/v1/namespaces/{NAMESPACE}/pods/{DRIVER_POD}").json()
        return str(pod["metadata"]["uid"])

    # ----------------------------------------------------------------------------------------- processes

    def _ports(self) -> dict[str, int]:
        """The manager's health port and the sidecar's controller port (picked once, kept in the folder)."""
        path = self.folder / "ports.json"
        if path.is_file():
            return {k: int(v) for k, v in json.loads(path.read_text()).items()}
        ports = {"health": free_port(), "sidecar": free_port()}
        self.folder.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(ports))
        return ports

    def argv(self, process: str) -> list[str]:
        """The command line of the manager or the sidecar, each under a restart loop (see the module's docstring)."""
        ports = self._ports()
        if process == MANAGER:
            return restarted(
                [
                    str(self.build.manager),
                    f"--kubeconfig={self.cluster.admin_kubeconfig}",
                    "--leader-elect=false",
                    "--enable-auth=false",
                    f"--health-probe-bind-address=127.0.0.1:{ports['health']}",
                    "--metrics-bind-address=0",
                    f"--namespace={NAMESPACE}",
                ]
            )
        sidecar = [
            str(self.build.sidecar),
            f"--csi-addons-address=unix://{self.driver_socket}",
            f"--controller-port={ports['sidecar']}",
            f"--pod={DRIVER_POD}",
            f"--namespace={NAMESPACE}",
            f"--pod-uid={self.driver_pod_uid}",
            f"--node-id={self.cluster.node_name}",
            f"--leader-election-namespace={NAMESPACE}",
            "--enable-auth=false",
        ]
        # /var/run is a symlink to /run on most systems: the tmpfs goes where it really points.
        private_run = (
            f'mount -t tmpfs lab-serviceaccount "$(readlink -f /var/run)" && mkdir -p {SERVICE_ACCOUNT_DIR} && '
            f"cp {shlex.quote(str(self.folder / 'serviceaccount'))}/* {SERVICE_ACCOUNT_DIR}/ && "
            f"{RESTART_LOOP.format(command=shlex.join(sidecar))}"
        )
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", private_run]

    def env(self, process: str) -> dict[str, str] | None:
        """The sidecar finds its apiserver through the in-cluster variables; the manager inherits."""
        if process != SIDECAR:
            return None
        return {
            **os.environ,
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(self.cluster.state.ports.apiserver),
        }

    def healthy(self, process: str) -> bool:
        """The manager answers its readiness probe; the sidecar's CSIAddonsNode is Connected."""
        if process == MANAGER:
            port = self._ports()["health"]
            return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
        return self.node_state() == "Connected"

    def node_state(self) -> str | None:
        """The ``status.state`` of the CSIAddonsNode the sidecar registered (``None`` before it exists)."""
        nodes = self.cluster.request(
            "GET", f"/apis/csiaddons.openshift.io/v1alpha1/namespaces/{NAMESPACE}/csiaddonsnodes"
        ).json()
        states = [item.get("status", {}).get("state") for item in nodes.get("items", [])]
        return next((s for s in states if s), None)
