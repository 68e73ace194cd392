"""Alert rules: which alerts move which group, how (planned or unplanned), with or without approval, how often.

A rule's ``matchers`` use Alertmanager's own syntax and semantics: ``name="value"``, ``name!="value"``,
``name=~"regex"``, ``name!~"regex"`` (quotes optional), regular expressions anchored at both ends, and a label an
alert does not carry compared as the empty string. Rules are tried in order; the first whose matchers all hold
decides for that alert.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any, NamedTuple

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from workflows.groups import Duration
from workflows.models import Operation

_MATCHER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$")


class MatchOp(StrEnum):
    """How a matcher compares a label."""

    EQUAL = "="
    NOT_EQUAL = "!="
    REGEX = "=~"
    NOT_REGEX = "!~"


class Matcher(BaseModel):
    """One label matcher (``name op value``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    label: str
    op: MatchOp
    value: str
    _pattern: re.Pattern[str] | None = PrivateAttr(default=None)

    def model_post_init(self, context: Any) -> None:
        """Compile a regular expression once."""
        if self.op in (MatchOp.REGEX, MatchOp.NOT_REGEX):
            self._pattern = re.compile(self.value)

    def matches(self, labels: dict[str, str]) -> bool:
        """Whether ``labels`` satisfy this matcher (a missing label is the empty string, as in Alertmanager)."""
        actual = labels.get(self.label, "")
        if self.op is MatchOp.EQUAL:
            return actual == self.value
        if self.op is MatchOp.NOT_EQUAL:
            return actual != self.value
        assert self._pattern is not None
        found = self._pattern.fullmatch(actual) is not None
        return found if self.op is MatchOp.REGEX else not found

    def __str__(self) -> str:
        return f'{self.label}{self.op.value}"{self.value}"'


def parse_matcher(value: Any) -> Any:
    """``'severity=~"critical|page"'`` -> a :class:`Matcher`; anything else is left to pydantic's validation."""
    if not isinstance(value, str):
        return value
    found = _MATCHER.match(value)
    if found is None:
        raise ValueError(f'matcher {value!r} is not name="value", name!="value", name=~"regex" or name!~"regex"')
    label, op, raw = found.groups()
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        raw = raw[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    if op in (MatchOp.REGEX.value, MatchOp.NOT_REGEX.value):
        try:
            re.compile(raw)
        except re.error as error:
            raise ValueError(f"matcher {value!r}: not a valid regular expression: {error}") from error
    return Matcher(label=label, op=MatchOp(op), value=raw)


class Approval(StrEnum):
    """Whether an operation a rule starts waits for ``orchestrate approve``."""

    REQUIRED = "required"
    AUTOMATIC = "automatic"


class TargetKind(StrEnum):
    """What a rule moves."""

    GROUP = "group"
    SITE = "site"


class Target(NamedTuple):
    """A group or a site: what one operation (``failover/<group>`` or ``site-failover/<site>``) moves."""

    kind: TargetKind
    name: str

    def __str__(self) -> str:
        return f"{self.kind.value} {self.name}"


class AlertRule(BaseModel):
    """Alerts matching ``matchers`` move ``group``, or every group whose primary is in ``site`` (one of the two).

    Attributes:
        name: names the rule in answers, logs and the operation's record.
        matchers: all must hold (Alertmanager syntax, see the module).
        group: the protection group to move.
        site: the site to fail over (``orchestrate failover --site``): every group whose primary is observed there.
        away_from: for a group: the site it moves away from (the group's cluster there is the source, the other
            the target); required for a planned rule, so that an alert still firing after the cooldown can never
            move the group back to the site it is about (that operation is refused: "already runs on ...").
        operation: ``planned`` (the source answers: a handover without data loss) or ``unplanned`` (the source is
            lost: the worker's preflight still refuses while the orchestrator can reach it).
        approval: ``required`` waits for ``orchestrate approve``; ``automatic`` goes ahead, and needs the group to
            allow it (``approval.alert_triggered: false``). Unset: unplanned waits, planned follows the group.
        cooldown: no alert moves the group again within this long after a move of it ended (for a site: after a
            site failover of it that moved groups).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    matchers: tuple[Annotated[Matcher, BeforeValidator(parse_matcher)], ...] = Field(min_length=1)
    group: str | None = None
    site: str | None = None
    away_from: str | None = None
    operation: Operation
    approval: Approval | None = None
    cooldown: Duration = timedelta(hours=1)

    @model_validator(mode="after")
    def _one_target(self) -> AlertRule:
        if (self.group is None) == (self.site is None):
            raise ValueError("a rule names exactly one of group or site")
        if self.site is not None and self.away_from is not None:
            raise ValueError("away_from is for a group rule: a site rule moves every group away from its site")
        if self.group is not None and self.away_from is None and self.operation is Operation.PLANNED:
            raise ValueError(
                "a planned group rule needs away_from: <site> (the site the alert is about), or an alert still "
                "firing after the cooldown would move the group back there"
            )
        return self

    @property
    def target(self) -> Target:
        """What the rule moves."""
        if self.group is not None:
            return Target(TargetKind.GROUP, self.group)
        return Target(TargetKind.SITE, self.site or "")

    @field_validator("operation")
    @classmethod
    def _planned_or_unplanned(cls, operation: Operation) -> Operation:
        if operation not in (Operation.PLANNED, Operation.UNPLANNED):
            raise ValueError(f"an alert starts a planned or an unplanned failover, not {operation.value!r}")
        return operation

    def matches(self, labels: dict[str, str]) -> bool:
        """Whether every matcher holds for ``labels``."""
        return all(m.matches(labels) for m in self.matchers)


class AlertSettings(BaseModel):
    """The ``alerts`` section of the configuration."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rules: tuple[AlertRule, ...] = ()

    def first_match(self, labels: dict[str, str]) -> AlertRule | None:
        """The first rule whose matchers all hold, if any."""
        return next((rule for rule in self.rules if rule.matches(labels)), None)
