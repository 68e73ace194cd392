"""One lab Kubernetes cluster: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok as processes.

Every component listens on loopback ports recorded in the cluster's state, so a later CLI invocation (``orchestrate
sandbox down``) or a fault test can stop and start exactly the processes that an earlier one started.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import ssl
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from kubernetes.client import ApiClient

from clusters.kubeclient import close_api_client, new_api_client
from sandbox.binaries import LabBinaries
from sandbox.pki import ClusterPki, create_cluster_pki
from sandbox.processes import LabProcessError, free_port, is_running, start_process, stop_process, wait_until

SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.0/16"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
POD_LIFECYCLE = ("kwok", "kube-scheduler", "kube-controller-manager")
"""What runs pods, in start order (see :meth:`LabCluster.start_apiserver`)."""


@dataclass
class ClusterPorts:
    """Loopback ports of one cluster's components."""

    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int

    @classmethod
    def allocate(cls, taken: set[int]) -> ClusterPorts:
        """Pick free ports, none of them in ``taken`` (which is updated)."""
        return cls(*(free_port(taken) for _ in range(5)))


@dataclass
class ClusterState:
    """What is persisted about one cluster between CLI invocations."""

    name: str
    site: str
    ports: ClusterPorts
    pids: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClusterState:
        """Rebuild from :meth:`to_dict` output."""
        return cls(
            name=data["name"],
            site=data["site"],
            ports=ClusterPorts(**data["ports"]),
            pids={k: int(v) for k, v in data.get("pids", {}).items()},
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict."""
        return asdict(self)


class LabCluster:
    """A real Kubernetes control plane on loopback ports, with kwok playing the kubelet of its nodes."""

    def __init__(self, state: ClusterState, root: Path, binaries: LabBinaries) -> None:
        self.state = state
        self.root = root / state.name
        self.binaries = binaries
        self.pki: ClusterPki = create_cluster_pki(self.root / "pki", state.name)

    @property
    def name(self) -> str:
        """The cluster's name, also its kubeconfig context."""
        return self.state.name

    @property
    def server(self) -> str:
        """The apiserver URL."""
        return f"https://127.0.0.1:{self.state.ports.apiserver}"

    @property
    def admin_kubeconfig(self) -> Path:
        """A single-context kubeconfig used by this cluster's own components."""
        return self.root / "admin.kubeconfig"

    def log_file(self, component: str) -> Path:
        """Where ``component`` logs."""
        return self.root / "logs" / f"{component}.log"

    @property
    def etcd_data_dir(self) -> Path:
        """Etcd's data on tmpfs when the machine has one: the lab does not need fsync durability."""
        shm = Path("/dev/shm")
        if shm.is_dir():
            digest = hashlib.sha256(str(self.root.resolve()).encode()).hexdigest()[:12]
            return shm / f"failover-orchestrator-{digest}-{self.name}-etcd"
        return self.root / "etcd"

    # ----------------------------------------------------------------------------------------- configuration

    def kubeconfig_entry(self) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """The cluster, user and context entries of this cluster for a kubeconfig file."""

        def b64(path: Path) -> str:
            return base64.b64encode(path.read_bytes()).decode()

        cluster = {
            "name": self.name,
            "cluster": {"server": self.server, "certificate-authority-data": b64(self.pki.ca_cert)},
        }
        user = {
            "name": f"{self.name}-admin",
            "user": {"client-certificate-data": b64(self.pki.admin_cert), "client-key-data": b64(self.pki.admin_key)},
        }
        context = {"name": self.name, "context": {"cluster": self.name, "user": f"{self.name}-admin"}}
        return cluster, user, context

    def _write_admin_kubeconfig(self) -> None:
        cluster, user, context = self.kubeconfig_entry()
        write_kubeconfig(self.admin_kubeconfig, [(cluster, user, context)], current=self.name)

    def _argv(self, component: str) -> list[str]:
        ports, pki, kubeconfig = self.state.ports, self.pki, str(self.admin_kubeconfig)
        if component == "etcd":
            peer = f"http://127.0.0.1:{ports.etcd_peer}"
            client = f"http://127.0.0.1:{ports.etcd_client}"
            return [
                str(self.binaries.etcd),
                f"--name={self.name}",
                f"--data-dir={self.etcd_data_dir}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster={self.name}={peer}",
                "--log-level=warn",
            ]
        if component == "kube-apiserver":
            return [
                str(self.binaries.kube_apiserver),
                f"--etcd-servers=http://127.0.0.1:{ports.etcd_client}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={ports.apiserver}",
                f"--tls-cert-file={pki.serving_cert}",
                f"--tls-private-key-file={pki.serving_key}",
                f"--client-ca-file={pki.ca_cert}",
                "--authorization-mode=Node,RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki.service_account_public}",
                f"--service-account-signing-key-file={pki.service_account_private}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                "--endpoint-reconciler-type=none",
                f"--cert-dir={self.root / 'apiserver-certs'}",
            ]
        if component == "kube-controller-manager":
            return [
                str(self.binaries.kube_controller_manager),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={ports.controller_manager}",
                f"--root-ca-file={pki.ca_cert}",
                f"--service-account-private-key-file={pki.service_account_private}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                f"--cert-dir={self.root / 'controller-manager-certs'}",
            ]
        if component == "kube-scheduler":
            return [
                str(self.binaries.kube_scheduler),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={ports.scheduler}",
                f"--cert-dir={self.root / 'scheduler-certs'}",
            ]
        if component == "kwok":
            return [
                str(self.binaries.kwok),
                f"--kubeconfig={kubeconfig}",
                f"--config={self.binaries.kwok_stages}",
                "--manage-all-nodes=true",
                f"--cidr={POD_CIDR}",
                "--node-ip=127.0.0.1",
            ]
        raise ValueError(f"unknown component {component!r}")

    # ----------------------------------------------------------------------------------------- lifecycle

    def start_component(self, component: str, timeout: float = 90.0) -> None:
        """Start one component (if it is not running) and wait until it is healthy."""
        pid = self.state.pids.get(component, 0)
        if not is_running(pid):
            if component == "etcd":
                self.etcd_data_dir.mkdir(parents=True, exist_ok=True)
            pid = start_process(self._argv(component), self.log_file(component))
            self.state.pids[component] = pid
        wait_until(
            lambda: self.healthy(component),
            f"{self.name} {component}",
            timeout,
            pid=pid,
            log_file=self.log_file(component),
        )

    def stop_component(self, component: str, *, graceful: bool = True) -> None:
        """Stop one component (no-op when it is not running); not ``graceful`` means SIGKILL at once."""
        pid = self.state.pids.pop(component, 0)
        if pid:
            stop_process(pid, graceful=graceful)

    def start(self) -> None:
        """Start every component in dependency order and create the node."""
        self._write_admin_kubeconfig()
        for component in COMPONENTS:
            self.start_component(component)
        self.ensure_node()

    def stop(self) -> None:
        """Stop every component, newest first; the etcd data on tmpfs goes too."""
        for component in reversed(COMPONENTS):
            self.stop_component(component)

    def purge(self) -> None:
        """Remove the etcd data (after :meth:`stop`)."""
        shutil.rmtree(self.etcd_data_dir, ignore_errors=True)

    def stop_apiserver(self) -> None:
        """Make the cluster unreachable at once, as a site outage would (SIGKILL; etcd keeps the state)."""
        self.stop_component("kube-apiserver", graceful=False)

    def start_apiserver(self) -> None:
        """Bring a stopped apiserver back, with fresh controller manager, scheduler and kwok processes.

        They are stopped before the apiserver starts, and kwok starts before the controller manager. The old
        controller manager would otherwise act first on what it saw before the outage: it found the node's last
        heartbeat older than its grace period and marked the node and its pods not ready, moments before kwok
        could heartbeat. A restart also spares them client-go's watch backoff, which lags them for up to a
        minute after an outage.
        """
        self._stop_pod_lifecycle()
        self.start_component("kube-apiserver")
        self._start_pod_lifecycle()

    def restart_pod_lifecycle(self) -> None:
        """Fresh kwok, scheduler and controller manager processes (the apiserver runs): a stuck lifecycle restarts."""
        self._stop_pod_lifecycle()
        self._start_pod_lifecycle()

    def _stop_pod_lifecycle(self) -> None:
        for component in POD_LIFECYCLE:
            self.stop_component(component)

    def _start_pod_lifecycle(self) -> None:
        for component in POD_LIFECYCLE:  # kwok first: a new controller manager's first sight is a live node
            self.start_component(component)

    def running_components(self) -> dict[str, bool]:
        """Which components have a live process."""
        return {c: is_running(self.state.pids.get(c, 0)) for c in COMPONENTS}

    # ----------------------------------------------------------------------------------------- health

    def _tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        context.load_cert_chain(str(self.pki.admin_cert), str(self.pki.admin_key))
        return context

    def request(self, method: str, path: str, body: Any = None, timeout: float = 5.0) -> httpx.Response:
        """A raw HTTPS request to the apiserver as the admin user (no client-side validation of ``body``)."""
        with httpx.Client(verify=self._tls(), timeout=timeout) as http:
            return http.request(method, self.server + path, json=body)

    def healthy(self, component: str) -> bool:
        """One health probe of ``component``."""
        ports = self.state.ports
        if component == "etcd":
            return httpx.get(f"http://127.0.0.1:{ports.etcd_client}/health", timeout=2).status_code == 200
        if component == "kube-apiserver":
            return self.request("GET", "/readyz", timeout=3.0).status_code == 200
        if component in ("kube-controller-manager", "kube-scheduler"):
            port = ports.controller_manager if component == "kube-controller-manager" else ports.scheduler
            return httpx.get(f"https://127.0.0.1:{port}/healthz", verify=False, timeout=2).status_code == 200
        if component == "kwok":
            return is_running(self.state.pids.get("kwok", 0))
        raise ValueError(component)

    @property
    def node_name(self) -> str:
        """The name of the cluster's kwok node."""
        return f"{self.name}-node-1"

    def ensure_node(self, timeout: float = 60.0) -> None:
        """Create the kwok node if missing and wait until kwok reports it Ready."""
        path = f"/api/v1/nodes/{self.node_name}"
        if self.request("GET", path).status_code == 404:
            created = self.request("POST", "/api/v1/nodes", self._node_manifest())
            if created.status_code != 201:
                raise LabProcessError(f"{self.name}: creating node {self.node_name} failed: {created.text}")

        def ready() -> bool:
            conditions = self.request("GET", path).json().get("status", {}).get("conditions", [])
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

        wait_until(ready, f"{self.name} node {self.node_name} Ready", timeout, log_file=self.log_file("kwok"))

    def _node_manifest(self) -> dict[str, Any]:
        resources = {"cpu": "32", "memory": "256Gi", "pods": "110"}
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node_name,
                "annotations": {"node.alpha.kubernetes.io/ttl": "0", "kwok.x-k8s.io/node": "fake"},
                "labels": {
                    "kubernetes.io/hostname": self.node_name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "kwok",
                    "topology.kubernetes.io/zone": self.state.site,
                },
            },
            "status": {"allocatable": resources, "capacity": resources},
        }

    def api_client(self) -> ApiClient:
        """A new ``kubernetes.client.ApiClient`` for this cluster (the caller closes it)."""
        return new_api_client(self.admin_kubeconfig, self.name)

    def wait_for_default_service_account(self, namespace: str = "default", timeout: float = 60.0) -> None:
        """Wait until the controller manager created the namespace's default service account."""
        from kubernetes import client

        api_client = self.api_client()
        api = client.CoreV1Api(api_client)
        try:
            wait_until(
                lambda: api.read_namespaced_service_account("default", namespace) is not None,
                f"{self.name} default service account in {namespace}",
                timeout,
            )
        finally:
            close_api_client(api_client)


def write_kubeconfig(
    path: Path,
    entries: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]],
    current: str,
) -> None:
    """Write a kubeconfig with one cluster, user and context per entry."""
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [e[0] for e in entries],
        "users": [e[1] for e in entries],
        "contexts": [e[2] for e in entries],
        "current-context": current,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(document, sort_keys=False))
    tmp.chmod(0o600)
    tmp.replace(path)
