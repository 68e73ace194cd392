"""Unit: what ``status`` concludes from both sides of a group (``orchestrate.service.observe_group``).

On RGs recorded from the real Dell csm-replication v1.14.0 controllers: a group is protected when one side is a
healthy Primary, the other a healthy Secondary and data flows between them. Between FAILOVER_REMOTE and the
reprotect both RGs say link FAILEDOVER: roles and health look right, yet nothing replicates, and the summary says
so rather than "protected" (and the table shows each side "not replicating"); so does a lag beyond the RPO.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from clusters.api import JsonObject
from orchestrate import output
from orchestrate.commands import status
from orchestrate.config import parse_config
from orchestrate.service import observe_group
from tests.unit.fake_cluster import FakeClusterApi
from tests.unit.test_powerstore_real_recordings import recorded

CONFIG = """\
clusters:
  - {name: dc1, site: dc1, kubeconfig: kubeconfig}
  - {name: dc2, site: dc2, kubeconfig: kubeconfig}
groups:
  - name: pg-powerstore
    namespace: pg-powerstore
    backend: powerstore
    clusters: [dc1, dc2]
    rpo: {rpo}
    replication:
      name: {name}
"""


class Registry:
    """The two clusters, each a fake API server holding one recorded RG."""

    def __init__(self, **documents: JsonObject) -> None:
        self.apis = {cluster: FakeClusterApi(cluster, [document]) for cluster, document in documents.items()}

    def api(self, name: str) -> FakeClusterApi:
        return self.apis[name]


def view(dc1: str, dc2: str, rpo: str = "100000h") -> Any:
    documents = {"dc1": recorded(dc1), "dc2": recorded(dc2)}
    name = documents["dc1"]["metadata"]["name"]
    config = parse_config(CONFIG.replace("{name}", name).replace("{rpo}", rpo), Path("orchestrate.yaml"))
    return observe_group(Registry(**documents), config, config.group("pg-powerstore"))


def test_a_replicating_group_is_protected() -> None:
    resynced = view("dc1_target_resynced", "dc2_reprotect_succeeded")
    assert (resynced.primary, resynced.protected) == ("dc2", True), resynced.summary
    assert resynced.summary == "protected: Primary on dc2, replicating to dc1"


def test_a_failed_over_link_nothing_reprotected_is_not_protected() -> None:
    failed_over = view("dc1_target_during_peer_reprotect", "dc2_reprotect_in_progress")
    assert failed_over.primary == "dc2"
    assert not failed_over.protected
    assert failed_over.summary.startswith(
        "Primary on dc2; NOT protected: replication stopped, nothing has reprotected the group yet (dc1: "
    ), failed_over.summary
    assert "link FAILEDOVER" in failed_over.summary


def test_a_lag_beyond_the_rpo_is_named() -> None:
    # The recorded poll times are hours old by now: far beyond an RPO of five minutes.
    late = view("dc1_target_resynced", "dc2_reprotect_succeeded", rpo="5m")
    assert not late.protected
    assert "s ago, beyond the RPO of 300 s" in late.summary, late.summary


def test_the_status_table_shows_a_failed_over_side_as_not_replicating(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(output.console, "width", 200)
    status._render(view("dc1_target_during_peer_reprotect", "dc2_reprotect_in_progress"), None)
    printed = " ".join(capsys.readouterr().out.split())
    assert "NOT protected: replication stopped" in printed, printed
    assert printed.count("not replicating") == 2, printed  # both RGs say FAILEDOVER
