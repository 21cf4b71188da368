"""Evaluate the payment-risk models on replayed event streams.

Run ``python -m streams.tools.evaluation.risk`` (``--help`` for options). Each
evaluation validates the wire events as the stream does, folds them through
:class:`RiskReplay` — the stream's call sequence in one process — and reports:

- ``progressive_auc``: ROC AUC of the score every payment got *when it was
  scored* (before its label was known), over the payments after the warm-up
  (the first 20 % of payments), against the ground truth;
- ``progressive_auc_model_mode``: the same from the payment where the scorer
  switched from its cold-start rules to the model;
- ``online_auc_second_half`` vs ``batch_auc_second_half``: the same online
  scores on the second half of the payments, against scikit-learn's
  ``StandardScaler + LogisticRegression(class_weight="balanced")`` fitted on the
  first half's feature snapshots (the very features the online scorer saw) and
  *all* their true labels, then applied to the second half; ``*_last_quarter``
  the same on the last quarter only (with drift at half time: once the new
  pattern's labels have had time to arrive);
- with drift, ``labels_from_drift_to_detection``: the labels the scorer
  learned from the last record before the drift time to its first drift
  detection after it (the issue's "labelled payments after the drift"), and
  ``new_pattern_fraud_labels_in_first_1000``: how many of the first 1,000
  labels after the drift are fraud labels of payments made after it (the
  evidence a label-driven detector has to go on);
- the scorer's own progressive metrics and the pending-label counters.

The comparison is the real-world one: the online scorer learns only from the
labels that have arrived by then (chargebacks come 1–5 days late, reviews
within hours), the batch model gets every first-half label. With drift the
simulator's fraud changes at half time (``fraud_drift_at=0.5``; what changes is
in :mod:`streams.tools.simulation.fraud`), so the batch model meets only the
new patterns and the online scorer must learn them from late labels.

Needs scikit-learn (a test extra). PaySim mapping: see
:mod:`streams.tools.sources.paysim`. Seeds 7-12 without and with drift, one
summary line per run::

    python -m streams.tools.evaluation.risk --skip-paysim --direct --summary --seed 7 8 9 10 11 12
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from models.risk import ColdStartScorer, PaymentHistory, PendingLabels, RiskAssessment, RiskScorer, RuleBook
from streams.pipeline.events import EVENT_TYPES
from streams.pipeline.validation import EventValidator

#: ``../shared/datasets`` beside the project root, where the development data sets live.
DEFAULT_PAYSIM = Path(__file__).resolve().parents[4] / "shared" / "datasets" / "paysim-sample" / "paysim_sample.csv"
DEFAULT_CREDITCARD = DEFAULT_PAYSIM.parents[1] / "ulb-creditcard-head" / "creditcard_small.csv"


@dataclass(frozen=True, slots=True)
class ScoredPayment:
    """One payment as scored: its id, event time, feature snapshot, score, scorer mode, amount and decision."""

    payment_id: str
    ts: float
    features: dict[str, float]
    score: float
    mode: str
    amount: float = 0.0
    decision: str = "allow"


@dataclass
class RiskReplay:
    """Folds accepted records through history, rules, scorer and pending labels, as the stream does.

    Per payment: features from the customer's :class:`PaymentHistory` (before
    folding the payment in), rule hits, :meth:`RiskScorer.assess`, an alert if
    the customer's rate limit admits it, and the snapshot into
    :class:`PendingLabels`. Per label: resolve the snapshot and learn. After
    every record: learn the payments matured by the newest event time.
    """

    scorer: RiskScorer = field(default_factory=RiskScorer)
    pending: PendingLabels = field(default_factory=PendingLabels)
    rulebook: RuleBook = field(default_factory=RuleBook)
    histories: dict[str, PaymentHistory] = field(default_factory=dict)
    scored: list[ScoredPayment] = field(default_factory=list)
    alerts: int = 0
    now: float = float("-inf")
    #: Drifts the scorer detected, each with the event time of the record that led to it.
    drifts: list[dict[str, Any]] = field(default_factory=list)
    #: ``(event time, labels learned)`` after each record.
    label_clock: list[tuple[float, int]] = field(default_factory=list)
    #: ``(labels learned, payment id)`` after each fraud label learned.
    fraud_labels: list[tuple[int, str]] = field(default_factory=list)

    def apply(self, topic: str, record: dict[str, Any]) -> RiskAssessment | None:
        """Fold one accepted record; returns the assessment for a payment."""
        self.now = max(self.now, record["ts"])
        assessment = None
        if topic == "labels":
            self._learn_all([self.pending.label(record["payment_id"], record["is_fraud"], record["ts"])])
        else:
            history = self.histories.setdefault(record["customer_id"], PaymentHistory())
            if topic == "payments":
                assessment = self._score(history, record)
            history.update(record)
        self._learn_all(self.pending.expire(self.now))
        self.drifts += [{**drift, "ts": self.now} for drift in self.scorer.take_drifts()]
        self.label_clock.append((self.now, self.scorer.labels))
        return assessment

    def _score(self, history: PaymentHistory, payment: dict[str, Any]) -> RiskAssessment:
        features = history.features(payment)
        assessment = self.scorer.assess(features, self.rulebook.evaluate(features, payment))
        if assessment.alert and history.admit_alert(payment["payment_id"], payment["ts"]):
            self.alerts += 1
        ready = self.pending.add(payment["payment_id"], features, assessment.score, assessment.alert, payment["ts"])
        self._learn_all(ready)
        self.scored.append(ScoredPayment(payment["payment_id"], payment["ts"], features, assessment.score,
                                         assessment.mode, payment["amount"], assessment.decision))
        return assessment

    def _learn_all(self, ready: Iterable[Any]) -> None:
        for labelled in ready:
            if labelled is not None:
                self.scorer.learn_one(
                    labelled.features, labelled.is_fraud, score=labelled.score, alerted=labelled.alerted
                )
                if labelled.is_fraud:
                    self.fraud_labels.append((self.scorer.labels, labelled.payment_id))


def replay_wire(events: Iterable[tuple[str, Any]], replay: RiskReplay, through_json: bool = True) -> int:
    """Validate ``(topic, wire value)`` pairs and fold the accepted ones into ``replay``; returns rejects.

    ``through_json`` validates the JSON bytes exactly as the stream does; without
    it the wire dicts are validated by the same models directly (about 3x faster,
    raw ``bytes`` values are counted as rejected).
    """
    validator = EventValidator(max_bytes=1 << 20)
    rejected = 0
    for topic, value in events:
        record = _validated(validator, topic, value, through_json)
        if record is None:
            rejected += 1
        else:
            replay.apply(topic, record)
    return rejected


def _validated(validator: EventValidator, topic: str, value: Any, through_json: bool) -> dict[str, Any] | None:
    if through_json:
        return validator.check(topic, value if isinstance(value, bytes) else json.dumps(value).encode()).record
    if isinstance(value, bytes):
        return None
    try:
        return EVENT_TYPES[topic].model_validate(value, strict=False).to_record()
    except ValidationError:
        return None


def compare_with_batch(scored: list[ScoredPayment], truth: dict[str, bool], warmup: float = 0.2) -> dict[str, float]:
    """Progressive AUC after warm-up, and online vs batch logistic regression on the second half."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    labels = [truth[p.payment_id] for p in scored]
    after_warmup = int(len(scored) * warmup)
    half = len(scored) // 2
    names = sorted({name for p in scored for name in p.features})
    matrix = [[p.features.get(name, 0.0) for name in names] for p in scored]
    batch = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=2000))
    batch.fit(matrix[:half], labels[:half])
    batch_scores = batch.predict_proba(matrix[half:])[:, 1]
    online_scores = [p.score for p in scored]
    model_from = next((i for i, p in enumerate(scored) if p.mode == "model"), len(scored))
    quarter = len(scored) - 3 * len(scored) // 4
    return {
        "payments": len(scored),
        "frauds": sum(labels),
        "warmup_payments": after_warmup,
        "model_mode_from_payment": model_from,
        "progressive_auc": roc_auc_score(labels[after_warmup:], online_scores[after_warmup:]),
        "progressive_auc_model_mode": roc_auc_score(labels[model_from:], online_scores[model_from:]),
        "online_auc_second_half": roc_auc_score(labels[half:], online_scores[half:]),
        "batch_auc_second_half": roc_auc_score(labels[half:], batch_scores),
        "online_auc_last_quarter": roc_auc_score(labels[-quarter:], online_scores[-quarter:]),
        "batch_auc_last_quarter": roc_auc_score(labels[-quarter:], batch_scores[-quarter:]),
        "batch_auc_first_half_in_sample": roc_auc_score(labels[:half], batch.predict_proba(matrix[:half])[:, 1]),
        "money_after_warmup": money_at_budget(scored[after_warmup:], truth),
        "money_second_half": money_at_budget(scored[half:], truth),
    }


def money_at_budget(scored: Sequence[ScoredPayment], truth: dict[str, bool]) -> dict[str, float]:
    """Fraud money the stream's alerts caught and let through, against the cold-start rules at the same budget.

    The budget is the number of payments the stream alerted on (``review`` or
    ``block``); the rules alone (:class:`~models.risk.ColdStartScorer`, what a
    shop has without the model) alert on the same number of payments, their
    highest-scored ones. Also how many payments were blocked and how many of
    those were fraud.
    """
    rules = ColdStartScorer()
    alerted = [p.decision != "allow" for p in scored]
    budget = sum(alerted)
    by_rules = sorted(range(len(scored)), key=lambda i: -rules.score(scored[i].features))[:budget]
    rules_alerted = set(by_rules)
    fraud = [truth[p.payment_id] for p in scored]
    blocked = [i for i, p in enumerate(scored) if p.decision == "block"]
    return {
        "alerts": budget,
        "fraud_amount": sum(p.amount for p, f in zip(scored, fraud) if f),
        "fraud_amount_caught": sum(p.amount for p, f, a in zip(scored, fraud, alerted) if f and a),
        "fraud_amount_let_through": sum(p.amount for p, f, a in zip(scored, fraud, alerted) if f and not a),
        "rules_fraud_amount_let_through": sum(
            p.amount for i, (p, f) in enumerate(zip(scored, fraud)) if f and i not in rules_alerted),
        "blocked": len(blocked),
        "blocked_frauds": sum(fraud[i] for i in blocked),
    }


def _evaluate_source(source: Any, scorer: RiskScorer | None) -> dict[str, Any]:
    """Replay a dataset source (``events()`` and ``labels``) through the wire validation and a scorer; its report."""
    replay = RiskReplay(scorer=scorer or RiskScorer())
    rejected = replay_wire(((topic, value) for topic, _, value in source.events()), replay)
    truth = {label["payment_id"]: label["is_fraud"] for label in source.labels}
    return _report(replay, truth, rejected)


def evaluate_paysim(
    path: str | Path = DEFAULT_PAYSIM, label_delay_steps: float = 24.0, scorer: RiskScorer | None = None
) -> dict[str, Any]:
    """Replay the PaySim sample with delayed labels; progressive and online-vs-batch AUC."""
    from streams.tools.sources.paysim import read_paysim

    return _evaluate_source(read_paysim(path, label_delay_steps=label_delay_steps), scorer)


def evaluate_creditcard(
    path: str | Path = DEFAULT_CREDITCARD, label_delay_seconds: float = 60.0, scorer: RiskScorer | None = None
) -> dict[str, Any]:
    """Replay a ULB-layout card-fraud CSV (shop signals on every payment) with delayed labels."""
    from streams.tools.sources.creditcard import read_creditcard

    return _evaluate_source(read_creditcard(path, label_delay_seconds=label_delay_seconds), scorer)


def evaluate_simulator(
    seed: int = 7, drift: bool = True, scorer: RiskScorer | None = None, through_json: bool = True, **config: Any
) -> dict[str, Any]:
    """Replay a :class:`ShopSimulator` stream (fraud drift at half time if ``drift``)."""
    from streams.tools.simulation import ShopSimulator, SimulatorConfig

    settings = {"seed": seed, "fraud_drift_at": 0.5 if drift else None, **config}
    simulator = ShopSimulator(SimulatorConfig(**settings))
    replay = RiskReplay(scorer=scorer or RiskScorer())
    events = ((event.topic, event.value) for event in simulator.events())
    rejected = replay_wire(events, replay, through_json)
    frauds = simulator.ground_truth()["fraud_payments"]
    truth = {p.payment_id: p.payment_id in frauds for p in replay.scored}
    report = {"config": settings, **_report(replay, truth, rejected)}
    drift_ts = simulator.config.drift_ts
    if drift_ts is not None:
        labels_at_drift = max((labels for ts, labels in replay.label_clock if ts < drift_ts), default=0)
        report["labels_at_drift"] = labels_at_drift
        detected = [d for d in replay.drifts if d["ts"] >= drift_ts]
        report["labels_from_drift_to_detection"] = detected[0]["labels"] - labels_at_drift if detected else None
        report["drifts_before_drift"] = sum(d["ts"] < drift_ts for d in replay.drifts)
        new_pattern = {p.payment_id for p in replay.scored if p.ts >= drift_ts and truth[p.payment_id]}
        report["new_pattern_fraud_labels_in_first_1000"] = sum(
            payment_id in new_pattern and labels - labels_at_drift <= 1000 for labels, payment_id in replay.fraud_labels
        )
    return report


def summary_line(report: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of one evaluation, online minus batch and the fraud money on the second half."""
    money = report["money_second_half"]
    return {
        **report.get("config", {}),
        **{key: report[key] for key in ("payments", "frauds", "progressive_auc", "online_auc_second_half",
                                        "batch_auc_second_half", "online_auc_last_quarter", "batch_auc_last_quarter")},
        "online_minus_batch_second_half": report["online_auc_second_half"] - report["batch_auc_second_half"],
        **{f"second_half_{key}": value for key, value in money.items()},
        **{key: report[key] for key in ("labels_from_drift_to_detection", "drifts_before_drift",
                                        "new_pattern_fraud_labels_in_first_1000") if key in report},
        "drifts_detected": len(report["drifts"]),
    }


def _report(replay: RiskReplay, truth: dict[str, bool], rejected: int) -> dict[str, Any]:
    return {
        **compare_with_batch(replay.scored, truth),
        "rejected_events": rejected,
        "alerts_emitted": replay.alerts,
        "scorer_metrics": replay.scorer.metrics(),
        "drifts": replay.drifts,
        "pending": replay.pending.stats(),
    }


def main(argv: list[str] | None = None) -> None:
    """Command line: print the evaluations as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paysim", type=Path, default=DEFAULT_PAYSIM, help="path to paysim_sample.csv")
    parser.add_argument("--label-delay-steps", type=float, default=24.0, help="PaySim label delay in hours")
    parser.add_argument("--seed", type=int, nargs="+", default=[7], help="simulator seeds")
    parser.add_argument("--customers", type=int, default=2000, help="simulated customers")
    parser.add_argument("--days", type=float, default=14.0, help="simulated days")
    parser.add_argument("--fraud-rate", type=float, default=0.01, help="simulated share of fraudulent payments")
    parser.add_argument("--direct", action="store_true", help="validate wire dicts, not JSON bytes (~3x faster)")
    parser.add_argument("--summary", action="store_true", help="print one line of headline numbers per run")
    parser.add_argument("--skip-paysim", action="store_true")
    parser.add_argument("--skip-simulator", action="store_true")
    parser.add_argument("--creditcard", type=Path, nargs="?", const=DEFAULT_CREDITCARD, default=None,
                        help="also replay a ULB-layout card-fraud CSV (default file: the shared sample)")
    parser.add_argument("--creditcard-delay", type=float, default=60.0, help="card label delay in seconds")
    parser.add_argument("--block-threshold", type=float, default=None, help="scorer's block threshold")
    parser.add_argument("--min-fraud-labels", type=int, default=None, help="frauds before the model answers")
    args = parser.parse_args(argv)
    settings = {"block_threshold": args.block_threshold}
    if args.min_fraud_labels is not None:
        settings["min_positives"] = args.min_fraud_labels

    def scorer() -> RiskScorer:
        return RiskScorer(**settings)

    runs: list[tuple[str, Callable[[], dict[str, Any]]]] = []
    if not args.skip_paysim:
        runs.append(("paysim", lambda: evaluate_paysim(args.paysim, args.label_delay_steps, scorer())))
    if args.creditcard is not None:
        runs.append(("creditcard", lambda: evaluate_creditcard(args.creditcard, args.creditcard_delay, scorer())))
    if not args.skip_simulator:
        runs += [
            ("simulator", partial(
                evaluate_simulator, seed, drift, scorer(), through_json=not args.direct, customers=args.customers,
                days=args.days, fraud_rate=args.fraud_rate,
            ))
            for drift in (False, True) for seed in args.seed
        ]
    reports = []
    for source, evaluate in runs:
        report = {"source": source, **evaluate()}
        if args.summary:
            print(json.dumps({"source": source, **summary_line(report)}, default=float), flush=True)
        reports.append(report)
    if not args.summary:
        print(json.dumps(reports, indent=2, default=float))


if __name__ == "__main__":
    main()
