"""Alertmanager's webhook payload (version "4"), validated strictly where it matters and tolerant of new fields.

Alertmanager adds fields over time (``notification_reason`` since v0.32, ``truncatedAlerts`` since 0.21): unknown
fields are ignored, the ones the intake relies on must be present and of the right type.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr

SUPPORTED_VERSION = "4"


class _Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class Alert(_Payload):
    """One alert of a notification."""

    status: Literal["firing", "resolved"]
    labels: dict[StrictStr, StrictStr]
    annotations: dict[StrictStr, StrictStr] = {}
    starts_at: datetime | None = Field(default=None, alias="startsAt")
    ends_at: datetime | None = Field(default=None, alias="endsAt")
    generator_url: StrictStr = Field(default="", alias="generatorURL")
    fingerprint: StrictStr = ""

    @property
    def name(self) -> str:
        """The ``alertname`` label ("" when missing)."""
        return self.labels.get("alertname", "")


class Notification(_Payload):
    """One webhook request: a group of alerts as one Alertmanager route sends it."""

    version: StrictStr
    group_key: StrictStr = Field(alias="groupKey")
    status: Literal["firing", "resolved"]
    receiver: StrictStr
    alerts: list[Alert]
    group_labels: dict[StrictStr, StrictStr] = Field(default={}, alias="groupLabels")
    common_labels: dict[StrictStr, StrictStr] = Field(default={}, alias="commonLabels")
    common_annotations: dict[StrictStr, StrictStr] = Field(default={}, alias="commonAnnotations")
    external_url: StrictStr = Field(default="", alias="externalURL")
    truncated_alerts: int = Field(default=0, alias="truncatedAlerts")
    notification_reason: StrictStr = ""
