"""Payment risk in the stream: score in the customer's partition, learn in the payment's.

**Scoring** (customers stage, :class:`RiskScoring`): a payment's features come
from its customer's :class:`~models.risk.PaymentHistory` *before* the payment
is folded in; the analyst rules and the worker's scoring model assess it; an
alert passes the customer's dedupe and rate limit. The feature snapshot, the
score and the alert decision go to the ``<app_id>-risk`` topic, partitioned by
payment id, where labels for that payment also go.

**Learning** (risk agent, :class:`RiskLearner`, one per risk partition):
:class:`~models.risk.PendingLabels` joins snapshots and labels (a label may
arrive first), matures unlabelled payments as legitimate (by setting), and
the partition's :class:`~models.risk.RiskScorer` learns from exactly the
features used at scoring time. The learner, its pending labels and its replay
guard are checkpointed together (:mod:`streams.pipeline.snapshots`), so no
label is learned twice or lost across a restart.

**Sync**: every ``KAIROS_RISK_SYNC_SECONDS`` each worker publishes its
learners on the model-sync topic and every worker replaces its learners and
its scoring model by the label-weighted average of all partitions' learners.
Analyst rules are read from the ``kairos:risk:rules`` hash (see
:meth:`RiskScoring.load_rules`).
"""

from __future__ import annotations

import json
import time
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from models.base import check_state_tag
from models.risk import AlertThreshold, PaymentHistory, PendingLabels, RiskAssessment, RiskScorer, RuleBook
from models.risk.rules import error_reason
from streams.pipeline.model_sync import ModelSync
from streams.pipeline.packing import PackedBatch
from streams.pipeline.replay_guard import AppliedOffsets
from streams.pipeline.snapshots import PartitionSnapshots
from streams.pipeline.views import Alert
from streams.settings import KairosSettings

log = logging.getLogger(__name__)

SYNC_KEY_PREFIX = "risk:"


def new_scorer(settings: KairosSettings) -> RiskScorer:
    """A scorer configured from the settings (threshold by value or by target alert rate)."""
    threshold = (
        AlertThreshold.fixed(settings.risk_threshold) if settings.risk_threshold is not None
        else AlertThreshold.for_alert_rate(settings.risk_target_alert_rate)
    )
    return RiskScorer(min_labels=settings.risk_min_labels, min_positives=settings.risk_min_fraud_labels,
                      threshold=threshold, block_threshold=settings.risk_block_threshold)


@dataclass
class ScoredPayment:
    """One payment's verdict and whether it raises an alert."""

    record: dict[str, Any]
    features: dict[str, float]
    assessment: RiskAssessment
    alert: bool

    def snapshot(self) -> dict[str, Any]:
        """What the learner needs when the label comes: the features and score used now."""
        return {"payment_id": self.record["payment_id"], "ts": self.record["ts"],
                "features": self.features, "score": self.assessment.score, "alert": self.alert}


class RiskScoring:
    """The worker's scoring model and analyst rules."""

    def __init__(self, settings: KairosSettings) -> None:
        self.settings = settings
        self.scorer = new_scorer(settings)
        self.rulebook = RuleBook()
        self.rules_source: dict[str, str | bytes] = {}
        self.rejected: dict[str, str] = {}

    def score(self, history: PaymentHistory, payment: dict[str, Any]) -> ScoredPayment:
        """Assess ``payment`` against its customer's history (call before folding it in)."""
        features = history.features(payment)
        assessment = self.scorer.assess(features, self.rulebook.evaluate(features, payment))
        alert = assessment.alert and history.admit_alert(
            payment["payment_id"], payment["ts"], self.settings.risk_alerts_per_customer_hour)
        return ScoredPayment(payment, features, assessment, alert)

    def load_rules(self, raw: Mapping[str, str | bytes]) -> dict[str, str]:
        """Replace the rule book by the rules in ``raw`` (rule id -> JSON) if it changed; returns the bad rules.

        Called with the whole ``kairos:risk:rules`` hash every sync round.
        Whatever wrote the hash, a rule that fails to decode, parse or
        validate, or fails in any other way, is left out with its reason: no
        stored rule can stop the worker or crash it at every restart. Rules
        that raised while scoring (taken as not hit) are returned too, with
        how often.
        """
        if raw != self.rules_source:
            book, rejected = RuleBook(), {}
            for rule_id, text in raw.items():
                try:
                    rejected.update(book.load([{**stored_rule(text), "id": rule_id}]))
                except Exception as exc:  # any stored rule, whatever wrote it, is skipped rather than fatal
                    rejected[rule_id] = error_reason(exc)
            self.rulebook, self.rules_source, self.rejected = book, dict(raw), rejected
            log.info("risk: %d analyst rules active, %d rejected", len(book.rules), len(rejected))
        failing = self.rulebook.failure_reasons()
        if failing:
            log.warning("risk: analyst rules raising while scoring: %s", failing)
        return {**self.rejected, **failing}

    def adopt(self, states: list[tuple[dict[str, Any], float]]) -> None:
        """Score with the label-weighted average of the learners' states."""
        if states and sum(weight for _, weight in states) > 0:
            self.scorer.merge(states)


def stored_rule(text: str | bytes) -> dict[str, Any]:
    """The JSON object of a rule as stored in the rules hash.

    >>> stored_rule('{"expression": "amount > 10", "action": "review"}')
    {'expression': 'amount > 10', 'action': 'review'}
    >>> stored_rule("[1, 2]")
    Traceback (most recent call last):
    ...
    ValueError: not a JSON object: a list
    """
    try:
        rule = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not a JSON object: {exc}") from None
    if not isinstance(rule, dict):
        raise ValueError(f"not a JSON object: a {type(rule).__name__}")
    return rule


#: A path (upstream partition) silent this long no longer holds the maturity watermark back.
IDLE_PATH_SECONDS = 30.0


class RiskLearner:
    """One risk partition: pending snapshots and labels, the learner, its replay guard."""

    STATE = ("RiskLearner", 1)
    #: Version of :meth:`checkpoint_parts`' core (the pending entries written apart).
    PARTS_VERSION = 2

    def __init__(self, scorer: RiskScorer, pending: PendingLabels, applied: AppliedOffsets | None = None,
                 now: float = float("-inf"), path_ts: dict[str, float] | None = None) -> None:
        self.scorer = scorer
        self.pending = pending
        self.applied = applied or AppliedOffsets()
        self.now = now
        #: Latest event time per upstream path: the maturity watermark is their minimum.
        self.path_ts: dict[str, float] = dict(path_ts or {})
        #: Wall-clock time (monotonic) of each path's last record; restored paths count as just seen.
        self.path_seen: dict[str, float] = dict.fromkeys(self.path_ts, time.monotonic())
        self.learned_since_sync = 0

    def watermark(self, now: float | None = None) -> float:
        """Event time every active upstream path has reached.

        Payments and labels reach a risk partition from every customers
        partition, each at its own pace (in a replay at full speed they can be
        days apart). Maturing payments by the fastest path's time would learn
        as legitimate payments whose labels are still on the way from a slower
        path. A path that sent nothing for ``IDLE_PATH_SECONDS`` of wall-clock
        time stops holding the watermark back.

        >>> learner = RiskLearner(None, PendingLabels(maturity_seconds=100.0))
        >>> learner.path_ts = {"a": 1000.0, "b": 400.0, "quiet": 10.0}
        >>> learner.path_seen = {"a": 50.0, "b": 50.0, "quiet": 50.0 - IDLE_PATH_SECONDS - 1}
        >>> learner.watermark(now=50.0)
        400.0
        """
        now = time.monotonic() if now is None else now
        active = [ts for path, ts in self.path_ts.items() if now - self.path_seen.get(path, now) <= IDLE_PATH_SECONDS]
        return min(active) if active else self.now

    @classmethod
    def new(cls, settings: KairosSettings) -> RiskLearner:
        return cls(new_scorer(settings), PendingLabels(
            maturity_seconds=settings.risk_label_maturity_seconds,
            learn_unlabelled_as_legit=settings.risk_learn_unlabelled_as_legit))

    def apply(self, batch: PackedBatch) -> int:
        """Fold one batch of snapshots (``pending``) or labels; returns how many were learned."""
        learned = 0
        for offset, record in batch.entries:
            if record is None or not self.applied.fresh(batch.path, offset):
                continue
            self.now = max(self.now, record["ts"])
            self.path_ts[batch.path] = max(self.path_ts.get(batch.path, float("-inf")), record["ts"])
            if batch.event_type == "pending":
                ready = self.pending.add(record["payment_id"], record["features"], record["score"],
                                         record["alert"], record["ts"])
            else:
                ready = [self.pending.label(record["payment_id"], record["is_fraud"], record["ts"])]
            learned += self._learn(ready)
        self.path_seen[batch.path] = time.monotonic()  # once per batch: a path's wall-clock activity
        learned += self._learn(self.pending.expire(self.watermark()))
        return learned

    def _learn(self, ready: list[Any]) -> int:
        learned = 0
        for payment in ready:
            if payment is not None:
                self.scorer.learn_one(payment.features, payment.is_fraud, score=payment.score, alerted=payment.alerted)
                learned += 1
        self.learned_since_sync += learned
        return learned

    def state_dict(self) -> dict[str, Any]:
        """Everything, pending payments included (version 1 of the checkpoint)."""
        return self._state(self.STATE[1], self.pending.state_dict())

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> RiskLearner:
        return cls._with(state, PendingLabels.from_state(state["pending"]))

    def _state(self, version: int, pending: dict[str, Any]) -> dict[str, Any]:
        return {"model": self.STATE[0], "version": version, "scorer": self.scorer.state_dict(), "pending": pending,
                "applied": self.applied.to_state(), "now": self.now, "path_ts": self.path_ts}

    @classmethod
    def _with(cls, state: dict[str, Any], pending: PendingLabels) -> RiskLearner:
        return cls(RiskScorer.from_state(state["scorer"]), pending, AppliedOffsets(state["applied"]), state["now"],
                   state.get("path_ts"))

    # -- incremental checkpoints (PartitionSnapshots with entries) ------------------

    def journal(self) -> None:
        """Start recording which pending payments, early labels and resolved ids change."""
        self.pending.journal()

    def resend_changes(self) -> None:
        """The last :meth:`checkpoint_parts` was not written: its entries go out again with the next."""
        self.pending.resend()

    def checkpoint_parts(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The learner without its pending entries (version 2), and the entries changed since the last call."""
        return self._state(self.PARTS_VERSION, self.pending.core_dict()), self.pending.changes()

    @classmethod
    def restore(cls, core: dict[str, Any], entries: Iterable[tuple[str, Any]]) -> RiskLearner:
        """Rebuild from :meth:`checkpoint_parts` output (or a version-1 :meth:`state_dict`), journaling."""
        if core.get("version") == cls.STATE[1]:
            learner = cls.from_state(core)
            learner.journal()  # its entries were never written one by one: the next checkpoint writes them all
            return learner
        check_state_tag(core, cls.STATE[0], cls.PARTS_VERSION)
        return cls._with(core, PendingLabels.from_parts(core["pending"], entries))


async def sync_learners(model_sync: ModelSync, learners: PartitionSnapshots[RiskLearner],
                        scoring: RiskScoring) -> None:
    """Publish this worker's learners; average every partition's into learners and the scoring model."""
    for partition, learner in list(learners.states.items()):
        async with learners.lock(partition):
            state = learner.scorer.state_dict()
            learner.learned_since_sync = 0
        await model_sync.publish(f"{SYNC_KEY_PREFIX}{partition}", {"state": state, "labels": learner.scorer.labels})
    states = [(s.payload["state"], float(max(s.payload["labels"], 1)))
              for s in model_sync.states(SYNC_KEY_PREFIX)]
    if not states:
        return
    scoring.adopt(states)
    for partition, learner in list(learners.states.items()):
        async with learners.lock(partition):
            learner.scorer.merge(states)


def drift_alert(partition: int, drift: dict[str, Any], ts: float) -> Alert:
    """The ``drift`` alert for one drift a partition's scorer detected (stable id: partition and label count).

    >>> alert = drift_alert(3, {"model": "RiskScorer", "metric": "fraud_rank_error", "before": 0.25,
    ...                         "after": 0.875, "labels": 4100, "frauds": 61}, ts=1795327277.0)
    >>> alert.alert_id, alert.reasons
    ('drift:risk:3:4100', ['RiskScorer fraud_rank_error 0.25 -> 0.875 after 4100 labels (61 frauds); adapting'])
    """
    before = "?" if drift["before"] is None else f"{drift['before']:.3g}"
    text = (f"{drift['model']} {drift['metric']} {before} -> {drift['after']:.3g} after {drift['labels']} labels "
            f"({drift['frauds']} frauds); adapting")
    return Alert(kind="drift", alert_id=f"drift:risk:{partition}:{drift['labels']}", subject=f"risk:{partition}",
                 score=drift["after"], reasons=[text], ts=ts, extra={**drift, "partition": partition})


async def drift_alerts(learners: PartitionSnapshots[RiskLearner]) -> list[Alert]:
    """The drift alerts of every learner since the last call (each scorer's detected drifts, taken)."""
    alerts = []
    for partition, learner in list(learners.states.items()):
        async with learners.lock(partition):
            alerts += [drift_alert(partition, drift, learner.now) for drift in learner.scorer.take_drifts()]
    return alerts
