"""Unit: ``orchestrate status`` when Temporal or a cluster's kubeconfig cannot be used, through the real CLI.

Covers: a kubeconfig without the configured context (or missing, or malformed) is a ``KubeconfigError`` naming the
file, the context and the contexts it has, shown on that side (not a traceback); with Temporal unreachable,
``status`` still shows both sides of each group, each operation as unknown with the reason, and exits 1.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from clusters.errors import KubeconfigError
from clusters.kubeclient import new_api_client
from tests.unit.config_texts import MINIMAL_CONFIG

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: far
  cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}
users:
- name: someone
  user: {token: not-a-secret}
contexts:
- name: dc1
  context: {cluster: far, user: someone}
current-context: dc1
"""
"""Has a context for dc1 (whose server refuses connections) and none for dc2."""

ORCHESTRATE = Path(sys.executable).parent / "orchestrate"


@pytest.fixture()
def config(tmp_path: Path) -> Path:
    (tmp_path / "kubeconfig").write_text(KUBECONFIG)
    path = tmp_path / "orchestrate.yaml"
    path.write_text(MINIMAL_CONFIG + "temporal:\n  address: 127.0.0.1:1\n")
    return path


def test_a_kubeconfig_without_the_context_names_the_contexts_it_has(tmp_path: Path) -> None:
    (tmp_path / "kubeconfig").write_text(KUBECONFIG)
    with pytest.raises(KubeconfigError) as error:
        new_api_client(tmp_path / "kubeconfig", "dc2")
    assert "has no context 'dc2' (its contexts: dc1)" in error.value.message
    assert str(tmp_path / "kubeconfig") in error.value.message


def test_a_missing_or_malformed_kubeconfig_is_a_kubeconfig_error(tmp_path: Path) -> None:
    with pytest.raises(KubeconfigError, match="cannot be read"):
        new_api_client(tmp_path / "absent", "dc1")
    (tmp_path / "broken").write_text("clusters: [oops\n")
    with pytest.raises(KubeconfigError, match="broken"):
        new_api_client(tmp_path / "broken", "dc1")


def test_status_without_temporal_shows_the_clusters_and_exits_1(config: Path) -> None:
    done = subprocess.run(
        [str(ORCHESTRATE), "status", "--config", str(config), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    (view,) = json.loads(done.stdout)
    sides = {s["cluster"]: s for s in view["sides"]}
    assert sides["dc1"]["reachable"] is False and "no answer from https://127.0.0.1:1" in sides["dc1"]["error"]
    assert sides["dc2"]["reachable"] is False and "has no context 'dc2'" in sides["dc2"]["error"]
    operation = view["operation"]
    assert (operation["status"], operation["answered"]) == ("UNKNOWN", False)
    assert operation["message"].startswith("cannot reach Temporal at 127.0.0.1:1")
    assert "cannot reach Temporal at 127.0.0.1:1" in done.stderr
