"""Whether a cluster's API server answers, judged from a few probes: the evidence behind "this site is lost".

The orchestrator force-promotes the other side of a group only when a site is *unreachable*, so this module is
strict about the word: a cluster is unreachable only when every probe over a short window got no answer at all
(:class:`~clusters.errors.ClusterUnreachableError`: connection refused or reset, DNS, no route, timeout). One
successful probe means it answers; a probe that gets a bad answer (401/403, 5xx, a non-JSON body, an untrusted
certificate) proves that something is there, so it ends the assessment at once with that verdict.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum
from typing import TypeVar

from pydantic import BaseModel, ConfigDict

from clusters.api import ClusterApi
from clusters.errors import (
    ApiServerError,
    ClusterUnreachableError,
    ForbiddenError,
    OrchestratorError,
    UntrustedEndpointError,
)


class Verdict(StrEnum):
    """What the probes found."""

    ANSWERS = "answers"
    """The API server answered a probe with 2xx JSON."""
    UNREACHABLE = "unreachable"
    """No probe got any answer (refused, reset, DNS, no route, timeout)."""
    UNHEALTHY = "unhealthy"
    """It answered, but with 5xx/429, a non-JSON body or another error status."""
    FORBIDDEN = "forbidden"
    """It answered 401/403: the orchestrator's credentials or RBAC are wrong."""
    UNTRUSTED = "untrusted"
    """Something answered, but the TLS handshake failed (certificate not trusted by the kubeconfig's CA)."""


class Reachability(BaseModel):
    """The result of probing one cluster.

    Attributes:
        verdict: what the probes found.
        detail: a human-readable explanation (the last error, or that it answered).
        probes: how many probes were sent.
        failed_probes: how many of them did not get a 2xx answer.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    verdict: Verdict
    detail: str
    probes: int
    failed_probes: int

    @property
    def answered(self) -> bool:
        """Whether anything answered (every verdict but ``unreachable``)."""
        return self.verdict is not Verdict.UNREACHABLE


def _verdict_of(error: OrchestratorError) -> Verdict:
    if isinstance(error, ClusterUnreachableError):
        return Verdict.UNREACHABLE
    if isinstance(error, ForbiddenError):
        return Verdict.FORBIDDEN
    if isinstance(error, UntrustedEndpointError):
        return Verdict.UNTRUSTED
    # ApiServerError (5xx, 429, non-JSON, broken HTTP) and any other status: it answered, but not well.
    return Verdict.UNHEALTHY


PROBE_TIMEOUT = 2.0
"""Connect and read timeout of one probe, in seconds."""

T = TypeVar("T")


def probe_by_reading(api: ClusterApi, read: Callable[[ClusterApi], T]) -> tuple[Reachability, T | None, str | None]:
    """Probe ``api`` with a read the caller needs anyway (one request less than a ping followed by the read).

    The read runs with the probe's timeout. An answer that says nothing about the API server's health (a 404, an
    invalid object) means that it answers: the read's own error is returned for the caller to report.

    Returns:
        The verdict of this one probe, what the read returned (``None`` when it failed) and the read's error
        (``None`` when it worked, or when the error is the verdict).
    """
    try:
        found = read(api.with_timeout((PROBE_TIMEOUT, PROBE_TIMEOUT)))
    except (ClusterUnreachableError, ForbiddenError, UntrustedEndpointError, ApiServerError) as exc:
        return Reachability(verdict=_verdict_of(exc), detail=exc.describe(), probes=1, failed_probes=1), None, None
    except OrchestratorError as exc:
        return _answers(api), None, exc.describe()
    return _answers(api), found, None


def _answers(api: ClusterApi) -> Reachability:
    return Reachability(verdict=Verdict.ANSWERS, detail=f"cluster {api.cluster} answers", probes=1, failed_probes=0)


def probe_once(api: ClusterApi, timeout: float = PROBE_TIMEOUT) -> Reachability:
    """Ping ``api`` once and classify the outcome.

    Args:
        api: the cluster to probe.
        timeout: connect and read timeout of the probe, in seconds (see :meth:`ClusterApi.ping`).

    Returns:
        A :class:`Reachability` of one probe.
    """
    try:
        api.ping(timeout=timeout)
    except OrchestratorError as exc:
        return Reachability(verdict=_verdict_of(exc), detail=exc.describe(), probes=1, failed_probes=1)
    return _answers(api)


def assess(
    api: ClusterApi,
    *,
    probes: int = 3,
    window: float = 6.0,
    probe_timeout: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Reachability:
    """Probe ``api`` up to ``probes`` times spread over ``window`` seconds and judge whether it answers.

    Probes start ``window / probes`` seconds apart (the time a probe took counts towards the gap). The first probe
    that gets any answer decides: ``answers`` on success, else ``forbidden``, ``untrusted`` or ``unhealthy``; only
    a probe that got no answer at all leads to another one. The verdict is ``unreachable`` only when every probe
    failed with :class:`~clusters.errors.ClusterUnreachableError`.

    Args:
        api: the cluster to probe.
        probes: the most probes to send (at least 1).
        window: the seconds the probes are spread over.
        probe_timeout: connect and read timeout of each probe, in seconds.
        sleep: waits between probes (tests pass a fake).

    Returns:
        The :class:`Reachability` verdict, with how many probes were sent and how many failed.

    Raises:
        ValueError: ``probes`` is below 1 or ``window`` is negative.
    """
    if probes < 1:
        raise ValueError(f"probes must be at least 1, not {probes}")
    if window < 0:
        raise ValueError(f"window must not be negative, not {window}")
    interval = window / probes
    last: Reachability | None = None
    for sent in range(1, probes + 1):
        started = time.monotonic()
        last = probe_once(api, probe_timeout)
        if last.verdict is not Verdict.UNREACHABLE:
            return Reachability(
                verdict=last.verdict,
                detail=last.detail,
                probes=sent,
                failed_probes=sent - 1 + last.failed_probes,
            )
        if sent < probes:
            sleep(max(0.0, interval - (time.monotonic() - started)))
    assert last is not None  # probes >= 1
    return Reachability(
        verdict=Verdict.UNREACHABLE,
        detail=f"no answer to {probes} of {probes} probes over {window:g}s; last: {last.detail}",
        probes=probes,
        failed_probes=probes,
    )
