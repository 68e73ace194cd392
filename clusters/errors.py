"""The one error hierarchy for domain failures, shared by clusters/ and adapters/.

Every failure is either *retryable* (the same call may succeed later: API 5xx, timeouts, 409 conflicts, a cluster
that does not answer, a backend still syncing) or *permanent* (retrying cannot help: an object is missing, a spec
is invalid, the backend gave up, a precondition failed). Activities convert these to Temporal errors in one place;
nothing below them imports temporalio.

Every message names the cluster, the object and the condition that decided it, so an operator reading a failed
workflow knows where to look.
"""

from __future__ import annotations

from typing import ClassVar


class OrchestratorError(Exception):
    """Base of every domain failure.

    Attributes:
        retryable: whether the same call may succeed later.
        cluster: the cluster the failure happened on, when known.
        object_ref: the object concerned (``kind namespace/name``), when known.
        condition: the status condition or reason that decided it, when known.
    """

    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        cluster: str | None = None,
        object_ref: str | None = None,
        condition: str | None = None,
    ) -> None:
        self.message = message
        self.cluster = cluster
        self.object_ref = object_ref
        self.condition = condition
        super().__init__(self.describe())

    def describe(self) -> str:
        """The message with its cluster, object and condition."""
        where = []
        if self.cluster:
            where.append(f"cluster {self.cluster}")
        if self.object_ref:
            where.append(self.object_ref)
        prefix = f"[{', '.join(where)}] " if where else ""
        # A wait's message often quotes the backend's condition already: saying it twice buries the cause.
        repeated = bool(self.condition) and str(self.condition) in self.message
        suffix = f" (condition: {self.condition})" if self.condition and not repeated else ""
        return f"{prefix}{self.message}{suffix}"

    @property
    def error_type(self) -> str:
        """A stable name for this failure class (used as the Temporal ApplicationError type)."""
        return type(self).__name__


class RetryableError(OrchestratorError):
    """The same call may succeed later."""

    retryable = True


class PermanentError(OrchestratorError):
    """Retrying the same call cannot help; an operator or a different plan is needed."""

    retryable = False


# Retryable ---------------------------------------------------------------------------------------------------------


class ClusterUnreachableError(RetryableError):
    """The cluster's API does not answer: connection refused, reset, DNS or routing failure, or a timeout.

    Only a failure to get any answer is "unreachable" (the orchestrator may treat the site as lost); an endpoint
    that answers with an error, a non-JSON body or an untrusted certificate raises another class.
    """


class ApiServerError(RetryableError):
    """The API server answered but could not serve the request: 5xx, 429, or an answer that is not valid JSON/HTTP.

    It answered, so this is never "unreachable".
    """


class ConflictError(RetryableError):
    """A write lost an optimistic-concurrency race (HTTP 409); read again and retry."""


class NotReadyError(RetryableError):
    """The backend has not reached the wanted state yet (still syncing, status not yet observed)."""


class BackendRetryingError(RetryableError):
    """The backend reported a failed attempt but keeps retrying on its own (e.g. FailedToDemote, Dell retrying)."""


# Permanent ---------------------------------------------------------------------------------------------------------


class ObjectMissingError(PermanentError):
    """An object the group needs does not exist."""


class KubeconfigError(PermanentError):
    """A cluster's kubeconfig cannot be used: missing or unreadable, malformed, or without the configured context."""


class InvalidSpecError(PermanentError):
    """The API server rejected a write as invalid (HTTP 400/422), or the configuration names impossible objects."""


class BackendFailedError(PermanentError):
    """The backend gave up (e.g. Dell state Error) or kept failing past the step's timeout."""


class PreconditionFailedError(PermanentError):
    """A precondition does not hold (volume still in use, peer not Secondary, a prerequisite the backend reports)."""


class ForbiddenError(PermanentError):
    """The API server refused the orchestrator's identity (HTTP 401/403): fix RBAC or credentials."""


class UntrustedEndpointError(PermanentError):
    """Something answers at the cluster's address, but the TLS handshake failed (its certificate is not trusted).

    The endpoint is *not* unreachable: check the kubeconfig's CA (``certificate-authority-data``) and ``server``.
    """
