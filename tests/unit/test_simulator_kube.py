"""Unit tier: the simulator's Kubernetes conventions (timestamps, Go durations, conditions, label selectors, the
simulated CSI driver's volume handles)."""

from __future__ import annotations

import pytest

from sandbox.simulator.kube import (
    go_duration,
    label_selector_matches,
    nested,
    parse_time,
    parse_volume_handle,
    rfc3339,
    set_condition,
    volume_handle,
)


def test_rfc3339_round_trip_to_the_second() -> None:
    assert rfc3339(0) == "1970-01-01T00:00:00Z"
    assert parse_time(rfc3339(1_800_000_000.7)) == 1_800_000_000
    assert parse_time("") is None and parse_time(None) is None and parse_time("yesterday") is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.3, "300ms"),
        (1, "1s"),
        (1.5, "1.5s"),
        (62.5, "1m2.5s"),
        (60, "1m0s"),
        (3600, "1h0m0s"),
        (-2, "-2s"),
    ],
)
def test_go_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def test_label_selectors() -> None:
    labels = {"app": "pg", "tier": "db"}
    assert label_selector_matches({}, labels), "an empty selector matches everything"
    assert not label_selector_matches(None, labels), "no selector matches nothing"
    assert label_selector_matches({"matchLabels": {"app": "pg"}}, labels)
    assert not label_selector_matches({"matchLabels": {"app": "web"}}, labels)
    expressions = [
        ({"key": "tier", "operator": "In", "values": ["db", "cache"]}, True),
        ({"key": "tier", "operator": "NotIn", "values": ["db"]}, False),
        ({"key": "app", "operator": "Exists"}, True),
        ({"key": "zone", "operator": "Exists"}, False),
        ({"key": "zone", "operator": "DoesNotExist"}, True),
        ({"key": "zone", "operator": "In", "values": ["a"]}, False),
    ]
    for requirement, expected in expressions:
        assert label_selector_matches({"matchExpressions": [requirement]}, labels) is expected, requirement


def test_condition_keeps_its_transition_time_until_the_status_changes() -> None:
    first = set_condition({}, "Completed", True, "Promoted", "", generation=1, now=100)
    assert first == {
        "type": "Completed",
        "status": "True",
        "observedGeneration": 1,
        "lastTransitionTime": rfc3339(100),
        "reason": "Promoted",
        "message": "",
    }
    same = set_condition({"Completed": first}, "Completed", True, "Promoted", "again", generation=2, now=200)
    assert same["lastTransitionTime"] == rfc3339(100) and same["observedGeneration"] == 2
    flipped = set_condition({"Completed": same}, "Completed", False, "FailedToDemote", "x", generation=3, now=300)
    assert flipped["lastTransitionTime"] == rfc3339(300)


def test_nested() -> None:
    document = {"a": {"b": {"c": 1}, "n": None}}
    assert nested(document, "a", "b", "c") == 1
    assert nested(document, "a", "x", default="d") == "d"
    assert nested(document, "a", "n", default=0) == 0
    assert nested(None, "a") is None


def test_volume_handles_round_trip_and_foreign_handles_are_not_ours() -> None:
    handle = volume_handle("pg-prod", "data-postgres-0")
    assert parse_volume_handle(handle) == ("pg-prod", "data-postgres-0")
    assert parse_volume_handle("0001-0009-rook-ceph-0000000000000002-uuid") is None
    assert parse_volume_handle("sim:no-slash") is None
