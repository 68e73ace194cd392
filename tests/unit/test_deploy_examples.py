"""Unit tier: the deploy/ examples stay true to the code: the search attributes the registration script creates are
the project's, the alerting rules use metrics the workflows record, and the Alertmanager receiver posts to the
webhook's path with a bearer token file."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from orchestrate.alerts.server import WEBHOOK_PATH
from workflows import metrics, visibility

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_the_registration_script_creates_every_search_attribute() -> None:
    script = (DEPLOY / "temporal" / "register-search-attributes.sh").read_text()
    (names,) = re.findall(r"for name in ([^;]+);", script)
    assert sorted(names.split()) == sorted(key.name for key in visibility.ALL_KEYS)


def test_the_alerting_rules_use_recorded_metrics_and_carry_a_routing_label() -> None:
    recorded = {value for name, value in vars(metrics).items() if name.isupper() and isinstance(value, str)}
    document = yaml.safe_load((DEPLOY / "prometheus" / "failover-rules.yml").read_text())
    rules = [rule for group in document["groups"] for rule in group["rules"]]
    assert rules
    for rule in rules:
        used = set(re.findall(r"\b(failover_[a-z_]+)", rule["expr"]))
        assert used and used <= recorded, (rule["alert"], used - recorded)


def test_the_alertmanager_receiver_posts_to_the_webhook_with_a_token_file() -> None:
    document = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    (receiver,) = [r for r in document["receivers"] if r.get("webhook_configs")]
    (webhook,) = receiver["webhook_configs"]
    assert webhook["url"].endswith(WEBHOOK_PATH) and webhook["send_resolved"] is True
    assert webhook["http_config"]["authorization"]["credentials_file"]
    assert {r["receiver"] for r in document["route"]["routes"]} == {receiver["name"]}
