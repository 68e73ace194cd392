"""The project's custom search attributes: registered in the Temporal namespace, set at start, upserted per phase.

Names carry a ``Failover`` prefix so they never collide with Temporal's own attributes and read clearly in the
Web UI's filter bar (``FailoverGroup = "pg-prod"``).
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

GROUP = SearchAttributeKey.for_keyword("FailoverGroup")
SITE = SearchAttributeKey.for_keyword("FailoverSite")
OPERATION = SearchAttributeKey.for_keyword("FailoverOperation")
PHASE = SearchAttributeKey.for_keyword("FailoverPhase")
TRIGGERED_BY = SearchAttributeKey.for_keyword("FailoverTriggeredBy")

ALL_KEYS = (GROUP, SITE, OPERATION, PHASE, TRIGGERED_BY)
"""Every custom search attribute the project uses; all are Keyword attributes."""
