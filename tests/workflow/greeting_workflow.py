"""A trivial workflow for the workflow tier's smoke test of the dev server and its search attributes."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows import visibility


class GreetingInput(BaseModel):
    """Who to greet, and the phase to upsert on the way."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    phase: str


@workflow.defn
class GreetingWorkflow:
    """Upserts a phase search attribute, waits a moment, returns a greeting."""

    @workflow.run
    async def run(self, request: GreetingInput) -> str:
        workflow.upsert_search_attributes([visibility.PHASE.value_set(request.phase)])
        await workflow.sleep(timedelta(milliseconds=10))
        return f"hello {request.name}"
