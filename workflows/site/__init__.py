"""The site failover: every group whose primary is in a site, as child group operations by priority tiers.

Modules: :mod:`.workflow` (the workflow) and :mod:`.models` (what crosses the Temporal boundary).
"""

from workflows.site.workflow import SiteFailoverWorkflow, site_operation_id

__all__ = ["SiteFailoverWorkflow", "site_operation_id"]
