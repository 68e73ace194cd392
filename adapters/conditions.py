"""Read the ``metav1.Condition`` lists of the csi-addons family (csi-addons and unified replication objects).

Pure functions over JSON documents, no I/O. The one rule that matters here is *currency*: a condition speaks for
the spec generation in its ``observedGeneration``; a condition written for an older generation says nothing about
the spec the orchestrator just wrote, so it counts as "not yet" rather than as an answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Condition types and reasons of the csi-addons replication API (reference/backends.md, section 1).
COMPLETED = "Completed"
DEGRADED = "Degraded"
RESYNCING = "Resyncing"
VALIDATED = "Validated"
REPLICATING = "Replicating"
DESTINATION_INFO_AVAILABLE = "DestinationInfoAvailable"

STICKY = frozenset({VALIDATED, REPLICATING, DESTINATION_INFO_AVAILABLE})
"""Types the controller writes only on particular paths and otherwise leaves alone (it merges conditions by type).

Completed, Degraded and Resyncing are rewritten on every transition; ``Validated`` only when a promotion fails,
``Replicating`` only by the primary's periodic info refresh, ``DestinationInfoAvailable`` only by its own refresh.
"""

PREREQUISITE_NOT_MET = "PrerequisiteNotMet"
FAILED_REASONS = frozenset({"FailedToPromote", "FailedToDemote", "FailedToResync"})

TRUE = "True"
FALSE = "False"


def as_generation(value: object) -> int | None:
    """A generation number from JSON, or ``None`` when absent or not a positive integer.

    Kubernetes generations start at 1, so ``0`` (the Go zero value of an unset ``observedGeneration``) means unset.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    return value


@dataclass(frozen=True)
class Condition:
    """One ``metav1.Condition``.

    Attributes:
        type: e.g. ``Completed``.
        status: ``True``, ``False`` or ``Unknown``.
        reason: CamelCase reason, e.g. ``FailedToDemote``.
        message: the controller's message (often the storage driver's error verbatim).
        observed_generation: the spec generation the condition was written for (``None`` when unset).
    """

    type: str
    status: str
    reason: str
    message: str
    observed_generation: int | None

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Condition:
        """Parse one condition; missing fields become empty strings (the API server requires them anyway)."""
        return cls(
            type=str(document.get("type") or ""),
            status=str(document.get("status") or ""),
            reason=str(document.get("reason") or ""),
            message=str(document.get("message") or ""),
            observed_generation=as_generation(document.get("observedGeneration")),
        )

    def label(self) -> str:
        """``Type=Status/Reason``, the way operators read conditions (e.g. ``Resyncing=True/ResyncTriggered``)."""
        return f"{self.type}={self.status}/{self.reason}" if self.reason else f"{self.type}={self.status}"

    def describe(self) -> str:
        """The label followed by the message, when there is one."""
        return f"{self.label()}: {self.message}" if self.message else self.label()


class Conditions:
    """The conditions of one object, read against that object's ``metadata.generation``.

    Args:
        documents: ``status.conditions`` as JSON (anything that is not a list of objects is ignored).
        generation: the object's ``metadata.generation``.
        sticky: condition types the controller writes only on some transitions and otherwise leaves alone (see
            :data:`STICKY`). A stale sticky condition is disregarded (as if absent) instead of holding the whole
            status back: upstream csi-addons writes ``Validated`` only when a promotion fails, so after one failed
            promotion it stays at that generation for good, and a demoted side keeps the ``Replicating`` of its
            primary days; treating those as "not yet" would block every later operation.
    """

    def __init__(self, documents: object, generation: int | None, sticky: frozenset[str] = frozenset()) -> None:
        items: Iterable[object] = documents if isinstance(documents, list) else ()
        self.generation = generation
        self.sticky = sticky
        self.all: dict[str, Condition] = {}
        for item in items:
            if isinstance(item, Mapping):
                condition = Condition.from_json(item)
                self.all[condition.type] = condition

    def __bool__(self) -> bool:
        return bool(self.all)

    def is_current(self, condition: Condition) -> bool:
        """Whether ``condition`` was written for the object's current generation."""
        return self.generation is not None and condition.observed_generation == self.generation

    def current(self, type_: str) -> Condition | None:
        """The condition of that type if it speaks for the current generation; ``None`` if absent or stale."""
        condition = self.all.get(type_)
        return condition if condition is not None and self.is_current(condition) else None

    def is_true(self, type_: str) -> bool:
        """Whether the condition is current and ``True``."""
        condition = self.current(type_)
        return condition is not None and condition.status == TRUE

    def is_false(self, type_: str) -> bool:
        """Whether the condition is current and ``False``."""
        condition = self.current(type_)
        return condition is not None and condition.status == FALSE

    def stale(self) -> list[Condition]:
        """Non-sticky conditions written for another generation: while any exists, the status is not current."""
        return [c for c in self.all.values() if c.type not in self.sticky and not self.is_current(c)]

    def labels(self, *types: str) -> str:
        """Comma-separated labels of the current conditions among ``types`` (absent or stale ones skipped)."""
        return ", ".join(c.label() for c in (self.current(t) for t in types) if c is not None)
