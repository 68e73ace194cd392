"""Unit tier: how a domain error describes itself (clusters.errors.OrchestratorError.describe)."""

from __future__ import annotations

from clusters.errors import BackendFailedError


def test_the_description_names_the_cluster_the_object_and_the_condition() -> None:
    error = BackendFailedError("promotion refused", cluster="dc2", object_ref="VolumeReplication pg/vr", condition="X")
    assert error.describe() == "[cluster dc2, VolumeReplication pg/vr] promotion refused (condition: X)"


def test_a_condition_the_message_quotes_already_is_not_repeated() -> None:
    failure = "Action FAILOVER_REMOTE failed with error rpc error: code = Unknown desc = injected"
    error = BackendFailedError(f"final sync complete: the backend gave up: {failure}", condition=failure)
    assert error.describe().count(failure) == 1 and "(condition:" not in error.describe()
