#!/usr/bin/env sh
# Register the Failover Orchestrator's search attributes in a production Temporal namespace (once per namespace).
# The lab's dev server registers them itself (`--search-attribute`). Temporal Cloud: add them in the namespace's
# settings or with `tcld namespace search-attributes add`.
#
#   TEMPORAL_ADDRESS=temporal.example:7233 TEMPORAL_NAMESPACE=failover ./register-search-attributes.sh
set -eu
for name in FailoverGroup FailoverSite FailoverOperation FailoverPhase FailoverTriggeredBy; do
  temporal operator search-attribute create \
    --address "${TEMPORAL_ADDRESS:-127.0.0.1:7233}" \
    --namespace "${TEMPORAL_NAMESPACE:-default}" \
    --name "$name" --type Keyword
done
