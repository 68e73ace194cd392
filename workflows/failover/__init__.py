"""The group failover workflow and the fence it starts (DESIGN.md section 2).

Modules: :mod:`.workflow` (messages and dispatch), :mod:`.context` (what an operation knows, shared steps),
:mod:`.planned`, :mod:`.unplanned`, :mod:`.resume` (the paths), :mod:`.fence` (the fence workflow),
:mod:`.saga` (compensation) and :mod:`.steps` (the step runner).
"""

from workflows.failover.fence import GroupFenceWorkflow, fence_id
from workflows.failover.workflow import GroupFailoverWorkflow, operation_id

__all__ = ["GroupFailoverWorkflow", "GroupFenceWorkflow", "fence_id", "operation_id"]
