"""The alerting side of the lab for the e2e tests: a real Alertmanager (Debian's ``prometheus-alertmanager``)
configured from ``deploy/alertmanager/alertmanager.yml``, and ``orchestrate serve`` with alert rules added to the
lab's configuration.

Only the example's timings (seconds instead of minutes), the webhook's URL and the token file's path are changed
for the lab; routes, grouping, ``send_resolved`` and the authorization are the example's own.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from sandbox.processes import free_port, wait_until
from tests.e2e.conftest import ORCHESTRATE, FullLab

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "alertmanager" / "alertmanager.yml"
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager") or "prometheus-alertmanager"
AMTOOL = shutil.which("amtool") or "amtool"


@dataclass
class AlertStack:
    """A running Alertmanager and ``orchestrate serve``, with what a test needs to talk to them."""

    webhook_url: str
    serve_url: str
    alertmanager_url: str
    token: str
    serve_log: Path
    alertmanager_log: Path

    def post(
        self,
        payload: Any,
        token: str | None = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """POST to the webhook as Alertmanager would (with the right token unless told otherwise; "" sends none)."""
        token = self.token if token is None else token
        headers = {**({"Authorization": f"Bearer {token}"} if token else {}), **(headers or {})}
        if content is not None:
            headers["Content-Type"] = "application/json"
            return httpx.post(self.webhook_url, content=content, headers=headers, timeout=30)
        return httpx.post(self.webhook_url, json=payload, headers=headers, timeout=30)

    def metric(self, name: str, **labels: str) -> float:
        """A counter from serve's ``/metrics`` (0 when absent)."""
        wanted = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
        for line in httpx.get(f"{self.serve_url}/metrics", timeout=10).text.splitlines():
            if line.startswith(wanted + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def amtool(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``amtool ARGS`` against the Alertmanager."""
        return subprocess.run(
            [AMTOOL, *args, f"--alertmanager.url={self.alertmanager_url}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )


def lab_alertmanager_config(webhook_url: str, token_file: Path) -> dict[str, Any]:
    """The deploy/ example with the lab's URL and token file, and timings in seconds."""
    config: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    routes = config["route"]["routes"]
    for route in routes:
        route.update(group_wait="1s", group_interval="2s", repeat_interval="3s")
    (receiver,) = [r for r in config["receivers"] if r["name"] == routes[0]["receiver"]]
    (webhook,) = receiver["webhook_configs"]
    webhook["url"] = webhook_url
    webhook["http_config"]["authorization"]["credentials_file"] = str(token_file)
    return config


@contextlib.contextmanager
def alert_stack(full_lab: FullLab, root: Path, rules: list[dict[str, Any]]) -> Iterator[AlertStack]:
    """Start ``orchestrate serve`` (the lab's configuration plus ``rules``) and an Alertmanager routing to it."""
    root.mkdir(parents=True, exist_ok=True)
    token = "lab-webhook-token-" + os.urandom(8).hex()
    token_file = root / "webhook-token"
    token_file.write_text(token + "\n")
    config = yaml.safe_load(full_lab.lab.config_file.read_text())
    for cluster in config["clusters"]:  # the copy lives elsewhere: its kubeconfig paths must not be relative
        cluster["kubeconfig"] = str(full_lab.lab.config_file.parent / cluster["kubeconfig"])
    config["alerts"] = {"rules": rules}
    config_file = root / "orchestrate-with-alerts.yaml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    serve_port, am_port = free_port(), free_port()
    serve_url = f"http://127.0.0.1:{serve_port}"
    webhook_url = f"{serve_url}/webhook/alertmanager"
    am_config = root / "alertmanager.yml"
    am_config.write_text(yaml.safe_dump(lab_alertmanager_config(webhook_url, token_file), sort_keys=False))
    serve_log, am_log = root / "serve.log", root / "alertmanager.log"
    env = {**full_lab.env, "ORCHESTRATE_CONFIG": str(config_file)}
    processes: list[subprocess.Popen[bytes]] = []
    try:
        with serve_log.open("wb") as out:
            processes.append(
                subprocess.Popen(
                    [ORCHESTRATE, "serve", "--port", str(serve_port), "--token-file", str(token_file)],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        wait_until(
            lambda: httpx.get(f"{serve_url}/readyz", timeout=2).status_code == 200,
            "orchestrate serve ready",
            timeout=30,
            pid=processes[0].pid,
            log_file=serve_log,
        )
        with am_log.open("wb") as out:
            processes.append(
                subprocess.Popen(
                    [
                        ALERTMANAGER,
                        f"--config.file={am_config}",
                        f"--storage.path={root / 'alertmanager-data'}",
                        f"--web.listen-address=127.0.0.1:{am_port}",
                        "--cluster.listen-address=",
                    ],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        am_url = f"http://127.0.0.1:{am_port}"
        wait_until(
            lambda: httpx.get(f"{am_url}/-/ready", timeout=2).status_code == 200,
            "alertmanager ready",
            timeout=30,
            pid=processes[1].pid,
            log_file=am_log,
        )
        yield AlertStack(webhook_url, serve_url, am_url, token, serve_log, am_log)
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
