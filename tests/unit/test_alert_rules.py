"""Unit tier: alert rules in the configuration: Alertmanager's matcher syntax and semantics, and bad rules
reported with the file and what to change (an unknown group, a malformed matcher, approval the group forbids)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrate.alerts.rules import Approval, MatchOp, parse_matcher
from orchestrate.config import ConfigError, parse_config
from tests.unit.config_texts import MINIMAL_CONFIG
from workflows.models import Operation

RULES = """\
alerts:
  rules:
    - name: pg-prod-site-down
      matchers: ['alertname="SiteDown"', 'site=~"dc1|dc2"', 'severity!="info"']
      group: pg-prod
      operation: unplanned
      cooldown: 30m
    - name: pg-prod-maintenance
      matchers: [alertname=Maintenance]
      group: pg-prod
      away_from: dc1
      operation: planned
"""


def load(text: str) -> object:
    return parse_config(text, Path("/etc/failover/orchestrate.yaml"))


def test_rules_load_and_the_first_matching_rule_decides() -> None:
    config = parse_config(MINIMAL_CONFIG + RULES, Path("/etc/failover/orchestrate.yaml"))
    first, second = config.alerts.rules
    assert first.operation is Operation.UNPLANNED and first.cooldown.total_seconds() == 1800
    assert first.approval is None and second.cooldown.total_seconds() == 3600
    assert config.alerts.first_match({"alertname": "SiteDown", "site": "dc1", "severity": "page"}) is first
    assert config.alerts.first_match({"alertname": "SiteDown", "site": "dc1", "severity": "info"}) is None
    assert config.alerts.first_match({"alertname": "SiteDown", "site": "dc10"}) is None  # regexes are anchored
    assert config.alerts.first_match({"alertname": "Maintenance"}) is second


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ('alertname="A"', {"alertname": "A"}, True),
        ("alertname=A", {"alertname": "A"}, True),
        ('team!="db"', {}, True),  # a missing label is the empty string
        ('team=""', {}, True),
        ('team=~"db|web"', {"team": "web"}, True),
        ('team=~"db"', {"team": "dba"}, False),
        ('team!~"db.*"', {"team": "dba"}, False),
        ('msg="say \\"hi\\""', {"msg": 'say "hi"'}, True),
    ],
)
def test_matchers_follow_alertmanager(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_matcher(text).matches(labels) is expected


def test_a_matcher_keeps_its_operator() -> None:
    assert parse_matcher('a=~"x"').op is MatchOp.REGEX
    assert str(parse_matcher("a!=b")) == 'a!="b"'


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (["matchers: ['alertname']", "group: pg-prod", "operation: unplanned"], "is not name="),
        (["matchers: ['a=~\"(\"']", "group: pg-prod", "operation: unplanned"], "not a valid regular expression"),
        (["matchers: []", "group: pg-prod", "operation: unplanned"], "alerts.rules.0.matchers"),
        (["matchers: [a=b]", "group: nope", "operation: unplanned"], "unknown group 'nope'; known groups: pg-prod"),
        (["matchers: [a=b]", "site: dc9", "operation: planned"], "unknown site 'dc9'; known sites: dc1, dc2"),
        (["matchers: [a=b]", "operation: planned"], "exactly one of group or site"),
        (["matchers: [a=b]", "group: pg-prod", "site: dc1", "operation: planned"], "exactly one of"),
        (["matchers: [a=b]", "group: pg-prod", "operation: failback"], "a planned or an unplanned failover"),
        (["matchers: [a=b]", "group: pg-prod", "operation: planned"], "needs away_from: <site>"),
        (["matchers: [a=b]", "group: pg-prod", "away_from: dc7", "operation: planned"], "exactly one of"),
        (["matchers: [a=b]", "site: dc1", "away_from: dc1", "operation: planned"], "away_from is for a group"),
        (
            ["matchers: [a=b]", "group: pg-prod", "away_from: dc1", "operation: planned", "approval: automatic"],
            "alert_triggered",
        ),
    ],
)
def test_a_bad_rule_is_reported_with_the_file_and_the_reason(rule: list[str], message: str) -> None:
    text = MINIMAL_CONFIG + "alerts:\n  rules:\n    - name: r\n" + "".join(f"      {line}\n" for line in rule)
    with pytest.raises(ConfigError, match=r"/etc/failover/orchestrate\.yaml") as raised:
        load(text)
    assert message in str(raised.value)


def test_automatic_approval_needs_the_group_to_allow_it() -> None:
    text = MINIMAL_CONFIG.replace(
        "      name: postgres\n", "      name: postgres\n    approval:\n      alert_triggered: false\n"
    )
    text += "alerts:\n  rules:\n    - name: r\n      matchers: [a=b]\n      group: pg-prod\n      away_from: dc1\n"
    text += "      operation: planned\n      approval: automatic\n"
    config = parse_config(text, Path("orchestrate.yaml"))
    assert config.alerts.rules[0].approval is Approval.AUTOMATIC
