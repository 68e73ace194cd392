"""End to end: the Temporal Web UI as the operator's screen, opened by headless Chromium (Debian's ``chromium``).

After a planned failover of pg-prod through the CLI, the workflow list filtered by the group's search attribute
(``FailoverGroup="pg-prod"``) shows ``failover/pg-prod``; the workflow's history page shows its input (who
triggered it), its search attributes (group, phase, trigger), and its "User Metadata" page the static summary
("planned failover of pg-prod") and details (who triggered it, the backend). A screenshot of each page is kept in
the test's folder (and copied to ``$WEB_UI_SCREENSHOTS`` when set).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import urllib.parse
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import FullLab

GROUP = "pg-prod"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "chromium"
HEADLESS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars"]


def browse(url: str, screenshot: Path) -> str:
    """The page's DOM once its scripts ran (virtual time), and a screenshot of it."""
    common = [CHROMIUM, *HEADLESS, "--virtual-time-budget=20000", "--window-size=1600,1000"]
    subprocess.run([*common, f"--screenshot={screenshot}", url], capture_output=True, timeout=120, check=True)
    dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True)
    keep = os.environ.get("WEB_UI_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, Path(keep) / screenshot.name)
    return dom.stdout


def test_the_web_ui_finds_the_failover_by_its_group_and_shows_its_summary(
    full_lab: FullLab, home: None, tmp_path: Path
) -> None:
    moved = full_lab.cli("failover", "--group", GROUP, "--yes", "--json")
    assert moved.code == 0, moved.stdout + moved.stderr
    temporal = full_lab.lab.temporal
    assert temporal is not None
    ui, namespace = temporal.state.ui_url, temporal.state.namespace
    query = urllib.parse.quote(f'FailoverGroup="{GROUP}"')
    listing = browse(f"{ui}/namespaces/{namespace}/workflows?query={query}", tmp_path / "workflows-by-group.png")
    assert f"failover/{GROUP}" in listing
    assert "GroupFailover" in listing
    run_id = _newest_run(full_lab)
    workflow = f"{ui}/namespaces/{namespace}/workflows/{urllib.parse.quote(f'failover/{GROUP}', safe='')}/{run_id}"
    page = browse(f"{workflow}/history", tmp_path / "failover-history.png")
    assert "GroupFailover" in page and "cli:" in page
    attributes = browse(f"{workflow}/metadata", tmp_path / "failover-search-attributes.png")
    assert all(name in attributes for name in ("FailoverGroup", "FailoverPhase", "FailoverTriggeredBy", "Relocated"))
    # The page renders the summary and details (markdown) in a sandboxed frame that --dump-dom does not show:
    # the screenshot shows them; the test reads what the page is given, from the UI's own API.
    metadata = browse(f"{workflow}/user-metadata", tmp_path / "failover-summary.png")
    assert "User Metadata" in metadata and "Summary" in metadata
    api = f"{ui}/api/v1/namespaces/{namespace}/workflows/{urllib.parse.quote(f'failover/{GROUP}', safe='')}"
    described = httpx.get(api, params={"execution.runId": run_id}, timeout=30).json()
    user_metadata = described["executionConfig"]["userMetadata"]
    summary, details = (_decoded(user_metadata[key]) for key in ("summary", "details"))
    assert summary == f"planned failover of {GROUP}"
    assert details.startswith("triggered by cli:") and "backend csi-addons" in details
    assert (tmp_path / "workflows-by-group.png").stat().st_size > 10_000


def _newest_run(full_lab: FullLab) -> str:
    history = full_lab.cli("history", "--group", GROUP, "--json", "--limit", "1").json()
    run_id: str = history[0]["run_id"]
    return run_id


def _decoded(payload: dict[str, Any]) -> str:
    """A JSON payload's string, as the API shows it (base64 data)."""
    value = json.loads(base64.b64decode(payload["data"]))
    assert isinstance(value, str)
    return value
