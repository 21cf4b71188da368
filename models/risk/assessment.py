"""What the scorer says about one payment: score, decision and reasons.

These cross a process boundary (the Redis view ``risk:payment:{id}``, the
alerts stream and topic), so they are pydantic models.

>>> reason = RiskReason(kind="feature", name="new_card", text="card not seen before for this customer",
...                     contribution=1.3)
>>> RiskAssessment(score=0.93, model_score=0.93, mode="model", threshold=0.8, decision="review",
...                alert=True, reasons=[reason], model_version="model-1200").model_dump()["reasons"][0]["text"]
'card not seen before for this customer'
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

Decision = Literal["allow", "review", "block"]


class RiskReason(BaseModel):
    """Why a payment scored as it did: a feature's pull on the log-odds, or a rule hit."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["feature", "rule"]
    #: Feature (or feature group) name, or rule id.
    name: str
    text: str
    #: Log-odds contribution for a feature; ``None`` for a rule.
    contribution: float | None = None


class RiskAssessment(BaseModel):
    """The scorer's verdict on one payment."""

    model_config = ConfigDict(frozen=True)

    #: Final score: the model (or cold-start) score, raised by any rule score floor.
    score: float
    #: The score before rules.
    model_score: float
    #: ``"rules"`` while the cold-start scorer answers, ``"model"`` once the model is trusted.
    mode: Literal["rules", "model"]
    threshold: float
    decision: Decision
    #: Whether the payment alerts (decision is not ``"allow"``); rate limits apply downstream.
    alert: bool
    reasons: list[RiskReason]
    model_version: str
