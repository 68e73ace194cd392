"""The one place where domain errors become Temporal errors.

Every activity runs its body through :func:`domain_errors`: an :class:`~clusters.errors.OrchestratorError` turns
into an ``ApplicationError`` whose ``type`` is the error class name and whose ``non_retryable`` flag is the
opposite of the class's ``retryable``; the details carry the cluster, object and condition for the progress view.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from temporalio.exceptions import ApplicationError

from clusters.errors import OrchestratorError

P = ParamSpec("P")
R = TypeVar("R")


def to_application_error(error: OrchestratorError) -> ApplicationError:
    """The Temporal form of a domain error."""
    return ApplicationError(
        error.describe(),
        {"cluster": error.cluster, "object": error.object_ref, "condition": error.condition},
        type=error.error_type,
        non_retryable=not error.retryable,
    )


def domain_errors(function: Callable[P, R]) -> Callable[P, R]:
    """Decorate an activity so that domain errors leave it as ``ApplicationError``."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        except OrchestratorError as error:
            raise to_application_error(error) from error

    return wrapper
