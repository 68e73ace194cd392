"""Unit tests of the Temporal boundary models: immutable, and tolerant of fields a newer peer adds.

During a rolling upgrade an older worker may receive a request from a newer client (and an older CLI a newer
worker's result): unknown fields are ignored rather than failing the workflow task. Inputs name the group only.
"""

from __future__ import annotations

import pydantic
import pytest

from workflows.models import FailoverRequest, FailoverResult, FenceRequest, Operation, Outcome, Phase, Progress


def test_a_request_with_a_field_from_a_newer_client_is_read() -> None:
    request = FailoverRequest.model_validate(
        {"group": "pg-prod", "operation": "planned", "priority_tier": 2, "site_operation": "site-failover/dc1"}
    )
    assert (request.group, request.operation) == ("pg-prod", Operation.PLANNED)
    assert "priority_tier" not in request.model_dump()


def test_a_result_with_a_field_from_a_newer_worker_is_read() -> None:
    progress = {"group": "pg-prod", "operation": "planned", "source": "dc1", "target": "dc2", "phase": "Relocated"}
    result = FailoverResult.model_validate(
        {"outcome": "succeeded", "message": "ok", "progress": {**progress, "message": "", "tier": 1}, "extra": True}
    )
    assert result.outcome is Outcome.SUCCEEDED and result.progress.phase is Phase.RELOCATED


def test_boundary_models_are_frozen() -> None:
    fence = FenceRequest(group="pg-prod", old_primary="dc1", new_primary="dc2")
    with pytest.raises(pydantic.ValidationError):
        fence.stage = "fenced"  # type: ignore[misc]
    progress = Progress(
        group="g", operation=Operation.RESUME, source=None, target=None, phase=Phase.RESUMED, message=""
    )
    assert progress.rpo_seconds is None  # not known until the worker resolved the group


def test_a_request_names_the_group_only() -> None:
    with pytest.raises(pydantic.ValidationError):
        FailoverRequest.model_validate(
            {"group": {"name": "pg-prod", "namespace": "kube-system"}, "operation": "planned"}
        )
