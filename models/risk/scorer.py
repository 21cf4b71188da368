"""Online payment-risk scorer: a River classifier of standard scaling + logistic regression, learning late labels.

:class:`RiskScorer` is a :class:`river.base.Classifier`: ``learn_one(x, y)``,
``predict_proba_one(x)`` (``{False: p_legit, True: p_fraud}``) and
``predict_one(x)`` (the likelier class), usable in
``river.evaluate.progressive_val_score`` and checked by ``river.checks``. Its
learned part is the River pipeline ``preprocessing.StandardScaler() |
linear_model.LogisticRegression(optimizer=optim.RMSProp(...), l2=...)`` in
:attr:`RiskScorer.model`. :meth:`RiskScorer.score_one` is the fraud
probability as a number; :meth:`RiskScorer.assess` the stream's verdict.

River parts and why each is set as it is:

- ``preprocessing.StandardScaler`` sees every known feature on every label
  (absent features are sent as 0, up to ``max_features`` names): River's scaler
  counts a feature only when present, so a sparse indicator such as
  ``method_card`` (present only when 1) would get variance 0 and be ignored.
- ``optim.RMSProp(lr / sqrt(gradient_memory), rho = 1 - 1 / gradient_memory)``
  is AdaGrad whose squared-gradient sums forget: the step sizes stop shrinking
  after about ``gradient_memory`` labels, so the model keeps adapting when fraud
  patterns drift. Per-feature steps matter here: rare, strong indicators (a new
  card, a burst of failed attempts) get large steps from few fraud labels.
- ``drift.PageHinkley`` (``mode="up"``, ``delta`` 0.05, threshold 2, from
  the 30th fraud label) on each fraud label's rank error: the share of the
  last ``drift_window`` legit labels scored above it when it was scored (its
  part of 1 - ROC AUC). Measured on the errors of simulator seeds 7-12 with
  and without the planted fraud drift and of PaySim
  (``python -m streams.tools.evaluation.risk_drift``, ``BENCHMARKS.md``,
  "River risk scorer"): no false drift, the planted one found 1,464 to
  3,178 labelled payments after it. Lower thresholds find it sooner on some
  seeds (376 instead of 2,012 on seed 7) but also fire on seed 12 without
  drift, whose labels hold two frauds in a row ranked below 80 % of legit
  payments, as seed 7's first two post-drift frauds are; within the first
  1,000 labels after the drift the seeds hold only 0 to 2 post-drift fraud
  labels. River's ``ADWIN`` on the same errors (``delta`` 0.002 to 0.3)
  found at most one of the six drifts and fired 3-6 times on PaySim; and
  Page-Hinkley's state is a few numbers, so checkpoints restore it exactly
  (River's ADWIN lives in Rust). A detection is recorded
  (:meth:`RiskScorer.take_drifts`: model, metric, before, after) and the
  scorer adapts (:meth:`RiskScorer._watch_drift`).
- ``linear_model.LogisticRegression`` with ``optim.losses.Log`` and River's
  own intercept update (plain SGD at constant ``intercept_lr``; 0.03 was
  chosen among 0.01, 0.03, 0.05 and 0.2 on PaySim and simulator seeds 7-8:
  see ``BENCHMARKS.md``, "River risk scorer").

Not River, and why:

- *Non-negative risk indicators.* Features that can only raise risk
  (:data:`~models.risk.features.RISK_INDICATORS`) have their weights clipped at
  0 after every step (a projected gradient step; River's optimizers have no
  bound constraints). Without it correlated indicators traded signs in noisy
  online updates ("failed attempts lower the risk") and a later fraud pattern
  that lit up only one of them was missed (worst progressive AUC on simulator
  seeds 7-12 was 0.886 without, 0.974 with).
- *Class imbalance by replaying recent frauds.* After every label the
  regression takes one more step on the next of the last ``replay_frauds``
  fraud snapshots in turn, so while a fraud is recent it is learned about once
  per ``labels / frauds`` labels, the balance of a loss weighted by the label
  ratio, but in many small steps with the current weights; after a change of
  fraud pattern the new frauds take over the replay. A River loss weight
  (``optim.losses.Log(weight_pos=...)``) does the balance in one large step per
  fraud label instead: measured worse on PaySim (0.924 vs 0.944 online AUC on
  the second half) in the hand-written version, so the replay was kept and
  drives River's regression. The returned probability corrects the log-odds by
  the log of :meth:`RiskScorer.positive_weight` (the label ratio, at most
  ``max_positive_weight``), to stay on the scale of the label base rate.
- The cold start (:class:`~models.risk.coldstart.ColdStartScorer`): fixed
  weights, no learning. Until ``min_labels`` labels including
  ``min_positives`` frauds have been learned, scores come from it and
  :attr:`RiskScorer.mode` is ``"rules"``; afterwards ``"model"``. The model
  learns from the first label on; only the answer switches.

:meth:`RiskScorer.assess` turns features and rule hits into a decision with
reasons: ``review`` above the alert threshold, ``block`` above
``block_threshold`` (when set), and feeds the threshold and the progressive
metrics (:mod:`models.risk.metrics`, River metrics). :meth:`RiskScorer.learn_one`
takes a label, preferably with the score and alert decision the payment got
when it was scored (as kept by :class:`~models.risk.pending.PendingLabels`), so
the metrics measure what the stream did.

Several workers each train a copy and :meth:`RiskScorer.merge` their states by
weighted averaging of the River pipeline's numbers (scaler means and
variances, regression weights and intercept, RMSProp squared-gradient
averages); label counts add up what each worker learned since the last merge.
The replayed frauds, the threshold and the metrics stay per worker.

Memory: at most ``max_features`` features (further new names are ignored),
``replay_frauds`` fraud snapshots, ``drift_window`` legit scores, the
threshold's and metrics' windows.

>>> scorer = RiskScorer(min_labels=40, min_positives=5)
>>> normal = {"amount_z": 0.1, "new_device": 0.0, "velocity_1m": 0.0}
>>> fraud = {"amount_z": 6.0, "new_device": 1.0, "velocity_1m": 3.0}
>>> scorer.mode
'rules'
>>> for i in range(60):
...     scorer.learn_one(fraud if i % 6 == 0 else normal, i % 6 == 0)
>>> scorer.mode, scorer.score_one(fraud) > 0.5 > scorer.score_one(normal)
('model', True)
>>> scorer.predict_one(fraud), scorer.predict_one(normal)
(True, False)
>>> sorted(reason.name for reason in scorer.explain_one(fraud))
['amount_z', 'new_device', 'velocity_1m']
"""

from __future__ import annotations

import bisect
import collections
import math
from collections.abc import Iterable, Sequence
from typing import Any, Literal, Self

from river import base, compose, drift, linear_model, optim, preprocessing, stats, utils

from models.base import check_state_tag
from models.risk.assessment import Decision, RiskAssessment, RiskReason
from models.risk.coldstart import ColdStartScorer
from models.risk.features import FEATURE_GROUPS, RISK_INDICATORS, feature_reason
from models.risk.metrics import ProgressiveRiskMetrics, upgraded_metrics
from models.risk.rules import RiskRule
from models.risk.threshold import AlertThreshold

_EPSILON = 1e-8
_SEVERITY: dict[Decision, int] = {"allow": 0, "review": 1, "block": 2}



class RoundedScaler(preprocessing.StandardScaler):
    """River's ``StandardScaler`` whose running variance never scales by a negative one.

    River's incremental variance of a feature that is almost constant can end a hair below 0
    (``-1e-18``); ``v ** 0.5`` is then a complex number, which River's logistic regression refuses
    (``TypeError: VectorDict values must be real numbers``): it crashed the risk agent on a simulated
    shop. A variance at or below 0 scales to 0, as River does for exactly 0.

    >>> scaler = RoundedScaler()
    >>> scaler.learn_one({"x": 1.0})
    >>> scaler.vars["x"] = -1e-18
    >>> scaler.transform_one({"x": 1.0})
    {'x': 0.0}
    """

    def transform_one(self, x: dict) -> dict:
        if self.window_size is None and self.with_std:
            means, variances = self.means, self.vars
            return {i: (xi - means[i]) / variances[i] ** 0.5 if variances[i] > 0 else 0.0 for i, xi in x.items()}
        return super().transform_one(x)

class RiskScorer(base.Classifier):
    """Scores payments from their risk features; rules first, then River's scaled logistic regression."""

    STATE_MODEL = "RiskScorer"
    STATE_VERSION = 3

    def __init__(
        self,
        learning_rate: float = 0.2,
        l2: float = 1e-4,
        gradient_memory: float = 3000.0,
        intercept_lr: float = 0.03,
        min_labels: int = 200,
        min_positives: int = 20,
        replay_frauds: int = 64,
        max_positive_weight: float = 50.0,
        max_features: int = 160,
        threshold: AlertThreshold | None = None,
        block_threshold: float | None = None,
        metrics_window: int = 2000,
        non_negative: tuple[str, ...] = tuple(sorted(RISK_INDICATORS)),
        drift_threshold: float = 2.0,
        drift_delta: float = 0.05,
        drift_min_frauds: int = 30,
        drift_keep_frauds: int = 8,
        drift_window: int = 1000,
    ) -> None:
        if replay_frauds < 1:
            raise ValueError("replay_frauds must be at least 1")
        if gradient_memory <= 1:
            raise ValueError("gradient_memory must be more than 1 label")
        self.learning_rate = learning_rate
        self.l2 = l2
        self.gradient_memory = gradient_memory
        self.intercept_lr = intercept_lr
        self.min_labels = min_labels
        self.min_positives = min_positives
        self.replay_frauds = replay_frauds
        self.max_positive_weight = max_positive_weight
        self.max_features = max_features
        self.threshold = threshold if threshold is not None else AlertThreshold.for_alert_rate(0.01)
        self.block_threshold = block_threshold
        self.metrics_window = metrics_window
        self.non_negative = tuple(non_negative)
        self._non_negative = frozenset(self.non_negative)
        self.labels = 0
        self.positives = 0
        self._merged_labels = 0
        self._merged_positives = 0
        #: The learned part: River's scaler and logistic regression.
        self.model = compose.Pipeline(
            RoundedScaler(),
            linear_model.LogisticRegression(
                optimizer=optim.RMSProp(
                    lr=learning_rate / math.sqrt(gradient_memory),
                    rho=1.0 - 1.0 / gradient_memory,
                    eps=_EPSILON / gradient_memory,
                ),
                loss=optim.losses.Log(),
                l2=l2,
                intercept_lr=intercept_lr,
            ),
        )
        #: Known feature names, in order of first sight (at most ``max_features``).
        self._names: dict[str, None] = {}
        #: Feature snapshots of the most recent fraud labels, oldest first, and the next one to replay.
        self._replay: list[dict[str, float]] = []
        self._replay_cursor = 0
        self._cold_start = ColdStartScorer()
        self._metrics = ProgressiveRiskMetrics(metrics_window)
        self.drift_threshold = drift_threshold
        self.drift_delta = drift_delta
        self.drift_min_frauds = drift_min_frauds
        self.drift_keep_frauds = drift_keep_frauds
        self.drift_window = drift_window
        #: River's Page-Hinkley test on each fraud label's rank error (see :meth:`_watch_drift`).
        self.drift_detector = drift.PageHinkley(min_instances=drift_min_frauds, delta=drift_delta,
                                                threshold=drift_threshold, mode="up")
        #: Mean fraud-label error since the last drift, and over the last ``drift_keep_frauds`` frauds.
        self._error_since_drift = stats.Mean()
        self._error_recently: collections.deque[float] = collections.deque(maxlen=max(drift_keep_frauds, 1))
        #: Scores of the last ``drift_window`` legit labels, in arrival order and sorted.
        self._legit_scores: collections.deque[float] = collections.deque()
        self._legit_sorted: list[float] = []
        #: Drifts detected and not yet taken by :meth:`take_drifts` (at most 16).
        self.drifts: list[dict[str, Any]] = []

    @classmethod
    def _unit_test_params(cls) -> Iterable[dict[str, Any]]:
        yield {}
        yield {"min_labels": 20, "min_positives": 3}

    @property
    def _multiclass(self) -> bool:
        return False

    @property
    def scaler(self) -> preprocessing.StandardScaler:
        """River's standard scaler inside :attr:`model`."""
        return self.model["RoundedScaler"]

    @property
    def regression(self) -> linear_model.LogisticRegression:
        """River's logistic regression inside :attr:`model`."""
        return self.model["LogisticRegression"]

    @property
    def mode(self) -> Literal["rules", "model"]:
        """``"rules"`` until enough labels (and frauds) were learned, then ``"model"``."""
        trusted = self.labels >= self.min_labels and self.positives >= self.min_positives
        return "model" if trusted else "rules"

    def positive_weight(self) -> float:
        """About how much a fraud label weighs against a legit one: legit/fraud label ratio, clipped to [1, max]."""
        ratio = (self.labels - self.positives) / max(self.positives, 1)
        return min(max(ratio, 1.0), self.max_positive_weight)

    def score_one(self, x: dict[str, float]) -> float:
        """Fraud probability of a payment from its features."""
        if self.mode == "rules":
            return self._cold_start.score(x)
        return self._corrected(self.regression.predict_proba_one(self.scaler.transform_one(self._dense(x)))[True])

    def predict_proba_one(self, x: dict[str, float]) -> dict[bool, float]:
        """``{False: legit probability, True: fraud probability}``."""
        score = self.score_one(x)
        return {False: 1.0 - score, True: score}

    def explain_one(self, x: dict[str, float], top: int = 3) -> list[RiskReason]:
        """The features pushing this payment's score up most, with readable text."""
        raw = self._cold_start.contributions(x) if self.mode == "rules" else self._contributions(x)
        return _reasons(raw, x, top)

    def assess(self, x: dict[str, float], hits: Iterable[RiskRule] = (), top: int = 3) -> RiskAssessment:
        """Score, decide and explain one payment; feeds the threshold and the alert-rate metric.

        The decision is ``block`` above ``block_threshold`` (when set),
        ``review`` above the alert threshold, else ``allow``; a rule's action
        can only make it stricter.
        """
        hits = list(hits)
        if self.mode == "rules":
            model_score = self._cold_start.score(x)
            raw = self._cold_start.contributions(x)
        else:
            scaled = self.scaler.transform_one(self._dense(x))
            model_score = self._corrected(self.regression.predict_proba_one(scaled)[True])
            weights = self.regression._weights
            raw = {name: weights.get(name, 0.0) * value for name, value in scaled.items()}
        threshold = self.threshold.value()
        score = max([model_score] + [rule.action for rule in hits if isinstance(rule.action, float)])
        decision: Decision = "allow"
        if self.block_threshold is not None and score > self.block_threshold:
            decision = "block"
        elif score > threshold:
            decision = "review"
        for rule in hits:
            if isinstance(rule.action, str) and _SEVERITY[rule.action] > _SEVERITY[decision]:
                decision = rule.action
        reasons = [RiskReason(kind="rule", name=rule.id, text=rule.reason()) for rule in hits]
        reasons += _reasons(raw, x, top)
        self.threshold.observe(model_score)
        self._metrics.record_decision(decision != "allow")
        return RiskAssessment(
            score=score,
            model_score=model_score,
            mode=self.mode,
            threshold=threshold,
            decision=decision,
            alert=decision != "allow",
            reasons=reasons,
            model_version=f"{self.mode}-{self.labels}",
        )

    def learn_one(
        self, x: dict[str, float], y: bool, *, score: float | None = None, alerted: bool | None = None
    ) -> None:
        """Learn one label; ``score``/``alerted`` are what the payment got when scored (else recomputed)."""
        is_fraud = bool(y)
        scored = self.score_one(x) if score is None else score
        alerted = self.threshold.alerts(scored) if alerted is None else alerted
        self._metrics.record_label(scored, alerted, is_fraud, _amount(x))
        self.labels += 1
        self.positives += int(is_fraud)
        if is_fraud:
            self._watch_drift(self._rank_error(scored))
        else:
            self._remember_legit(scored)
        for name in x:
            if name not in self._names and len(self._names) < self.max_features:
                self._names[name] = None
        dense = self._dense(x)
        self.model.learn_one(dense, is_fraud)
        self._project()
        if is_fraud:
            self._replay.append(dense)
            del self._replay[: -self.replay_frauds]
        if self._replay:
            self._replay_cursor %= len(self._replay)
            replayed = self._replay[self._replay_cursor]
            if len(replayed) < len(self._names):  # features first seen after this fraud: absent, so 0
                replayed = self._replay[self._replay_cursor] = self._dense(replayed)
            self.regression.learn_one(self.scaler.transform_one(replayed), True)
            self._project()
            self._replay_cursor += 1

    def take_drifts(self) -> list[dict[str, Any]]:
        """The drifts detected since the last call (each: model, metric, before, after, labels, frauds)."""
        taken, self.drifts = self.drifts, []
        return taken

    def _rank_error(self, score: float) -> float:
        """Share of the recent legit labels scored above this fraud (ties count half): its 1 - AUC."""
        if not self._legit_sorted:
            return 0.5
        above = len(self._legit_sorted) - bisect.bisect_right(self._legit_sorted, score)
        tied = bisect.bisect_right(self._legit_sorted, score) - bisect.bisect_left(self._legit_sorted, score)
        return (above + tied / 2) / len(self._legit_sorted)

    def _remember_legit(self, score: float) -> None:
        self._legit_scores.append(score)
        bisect.insort(self._legit_sorted, score)
        if len(self._legit_scores) > self.drift_window:
            del self._legit_sorted[bisect.bisect_left(self._legit_sorted, self._legit_scores.popleft())]

    def _watch_drift(self, error: float) -> None:
        """Feed one fraud label's rank error to the drift test; on a drift, record it and adapt.

        The error of a fraud label is the share of the last ``drift_window``
        legit labels that were scored above it when scored (its contribution
        to 1 - ROC AUC), not whether it was missed at the alert budget: when
        frauds come in larger share than the budget (a fraud wave, PaySim's
        last days) more of them are missed though the model ranks them as well
        as before. Adapting: the replay keeps only the last
        ``drift_keep_frauds`` frauds (the new pattern's, most likely), so they
        are relearned at once instead of among ``replay_frauds`` older ones,
        and RMSProp's squared-gradient averages restart, so the next steps are
        as large as a fresh model's.
        """
        self.drift_detector.update(error)
        self._error_since_drift.update(error)
        self._error_recently.append(error)
        if not self.drift_detector.drift_detected:
            return
        recent, total = len(self._error_recently), self._error_since_drift
        earlier = total.n - recent
        self.drifts.append({
            "model": self.STATE_MODEL, "metric": "fraud_rank_error",
            "before": (total.get() * total.n - sum(self._error_recently)) / earlier if earlier > 0 else None,
            "after": sum(self._error_recently) / recent, "labels": self.labels, "frauds": self.positives,
        })
        del self.drifts[:-16]
        self._error_since_drift = stats.Mean()
        del self._replay[: -self.drift_keep_frauds]
        self._replay_cursor = 0
        self.regression.optimizer.g2 = None

    def merge(self, states_with_weights: Sequence[tuple[dict[str, Any], float]]) -> None:
        """Replace the model by the weighted average of worker states (include this worker's own).

        Scaler means and variances are pooled (mean of second moments), so a
        feature's merged variance includes the spread between workers; each
        feature's count is the merged label count times the share of labels
        that carried the feature. Weights, intercept and RMSProp averages are
        weighted means (a feature a worker never saw counts as 0 there).
        """
        states_with_weights = [(upgraded(state), weight) for state, weight in states_with_weights]
        for state, _ in states_with_weights:
            check_state_tag(state, self.STATE_MODEL, self.STATE_VERSION)
        total = sum(weight for _, weight in states_with_weights)
        if total <= 0:
            raise ValueError("merge needs a positive total weight")
        shares = [(state, weight / total) for state, weight in states_with_weights]
        names: dict[str, None] = {}
        for state, _ in shares:
            names.update(dict.fromkeys(state["names"]))
        base_labels = max(state["merged_labels"] for state, _ in shares)
        base_positives = max(state["merged_positives"] for state, _ in shares)
        self.labels = base_labels + sum(state["labels"] - state["merged_labels"] for state, _ in shares)
        self.positives = base_positives + sum(state["positives"] - state["merged_positives"] for state, _ in shares)
        self._merged_labels, self._merged_positives = self.labels, self.positives
        self._names = dict.fromkeys(list(names)[: self.max_features])
        counts, means, variances, weights, g2 = {}, {}, {}, {}, {}
        for name in self._names:
            seen = mean = second_moment = weight = squares = 0.0
            for state, share in shares:
                scaler = state["scaler"]
                s_mean, s_var = scaler["means"].get(name, 0.0), scaler["vars"].get(name, 0.0)
                seen += share * scaler["counts"].get(name, 0) / max(state["labels"], 1)
                mean += share * s_mean
                second_moment += share * (s_var + s_mean * s_mean)
                weight += share * state["weights"].get(name, 0.0)
                squares += share * state["g2"].get(name, 0.0)
            counts[name] = round(seen * self.labels)
            means[name] = mean
            variances[name] = max(second_moment - mean * mean, 0.0)
            weights[name] = weight
            g2[name] = squares
        self._set_model(counts, means, variances, weights, g2,
                        intercept=sum(state["intercept"] * share for state, share in shares),
                        iterations=round(sum(state["iterations"] * share for state, share in shares)))

    def metrics(self) -> dict[str, float]:
        """Progressive metrics (ROC AUC, precision/recall/F1 at the threshold, money, alert rate) and the mode."""
        return {
            **self._metrics.as_dict(),
            "threshold": self.threshold.value(),
            "model_mode": 1.0 if self.mode == "model" else 0.0,
            "labels_learned": self.labels,
            "frauds_learned": self.positives,
        }

    def clone(self, new_params: dict[str, Any] | None = None, include_attributes: bool = False) -> Self:
        """A fresh, unlearned scorer with the same settings (its own threshold, emptied)."""
        params = {**self._get_params(), "threshold": self.threshold.clone(), **(new_params or {})}
        return type(self)(**params)

    def state_dict(self) -> dict[str, Any]:
        """Plain-data checkpoint of settings, the River pipeline's numbers, threshold and metrics."""
        scaler, regression = self.scaler, self.regression
        return {
            "model": self.STATE_MODEL,
            "version": self.STATE_VERSION,
            "settings": self._settings(),
            "labels": self.labels,
            "positives": self.positives,
            "merged_labels": self._merged_labels,
            "merged_positives": self._merged_positives,
            "names": list(self._names),
            "scaler": {"counts": dict(scaler.counts), "means": dict(scaler.means), "vars": dict(scaler.vars)},
            "weights": regression._weights.to_dict(),
            "intercept": regression.intercept,
            "g2": regression.optimizer.g2.to_dict() if regression.optimizer.g2 is not None else {},
            "iterations": regression.optimizer.n_iterations,
            "replay": [dict(x) for x in self._replay],
            "replay_cursor": self._replay_cursor,
            "threshold": self.threshold.state_dict(),
            "metrics": self._metrics.state_dict(),
            "drift": self._drift_state(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """Rebuild a scorer from :meth:`state_dict` output (or a version-2 one, see :func:`upgraded`)."""
        state = upgraded(state)
        check_state_tag(state, cls.STATE_MODEL, cls.STATE_VERSION)
        scorer = cls(**state["settings"], threshold=AlertThreshold.from_state(state["threshold"]))
        scorer.labels = state["labels"]
        scorer.positives = state["positives"]
        scorer._merged_labels = state["merged_labels"]
        scorer._merged_positives = state["merged_positives"]
        scorer._names = dict.fromkeys(state["names"])
        scaler = state["scaler"]
        scorer._set_model(scaler["counts"], scaler["means"], scaler["vars"], state["weights"], state["g2"],
                          state["intercept"], state["iterations"])
        scorer._replay = [dict(x) for x in state["replay"]]
        scorer._replay_cursor = state["replay_cursor"]
        scorer._metrics = ProgressiveRiskMetrics.from_state(state["metrics"])
        scorer._set_drift(state["drift"])
        return scorer

    def _drift_state(self) -> dict[str, Any]:
        """The Page-Hinkley test's numbers (River keeps them in private attributes) and the miss rates."""
        detector = self.drift_detector
        return {
            "n": detector._x_mean.n, "mean": detector._x_mean.get(), "detected": detector.drift_detected,
            "sum_increase": detector._sum_increase,
            "min_increase": None if math.isinf(detector._min_increase) else detector._min_increase,
            "sum_decrease": detector._sum_decrease, "max_decrease": detector._max_decrease,
            "error_n": self._error_since_drift.n, "error_mean": self._error_since_drift.get(),
            "error_recently": list(self._error_recently), "pending": [dict(d) for d in self.drifts],
            "legit_scores": list(self._legit_scores),
        }

    def _set_drift(self, state: dict[str, Any]) -> None:
        detector = self.drift_detector
        detector._x_mean = _mean(state["n"], state["mean"])
        detector._drift_detected = state["detected"]
        detector._sum_increase = state["sum_increase"]
        detector._min_increase = math.inf if state["min_increase"] is None else state["min_increase"]
        detector._sum_decrease, detector._max_decrease = state["sum_decrease"], state["max_decrease"]
        self._error_since_drift = _mean(state["error_n"], state["error_mean"])
        self._error_recently.extend(state["error_recently"])
        self.drifts = [dict(d) for d in state["pending"]]
        for score in state["legit_scores"]:
            self._remember_legit(score)

    def _settings(self) -> dict[str, Any]:
        params = self._get_params()
        del params["threshold"]
        params["non_negative"] = list(self.non_negative)
        return params

    def _set_model(self, counts: dict[str, int], means: dict[str, float], variances: dict[str, float],
                   weights: dict[str, float], g2: dict[str, float], intercept: float, iterations: int) -> None:
        """Load the River pipeline's numbers (scaler moments, weights, intercept, RMSProp state)."""
        scaler, regression = self.scaler, self.regression
        scaler.counts = collections.Counter(counts)
        scaler.means = collections.defaultdict(float, means)
        scaler.vars = collections.defaultdict(float, variances)
        regression._weights = _vector(weights)
        regression.intercept = intercept
        regression.optimizer.g2 = _vector(g2) if g2 else None
        regression.optimizer.n_iterations = iterations

    def _dense(self, x: dict[str, float]) -> dict[str, float]:
        """Every known feature, absent ones as 0 (names beyond ``max_features`` dropped)."""
        return {name: float(x.get(name, 0.0)) for name in self._names}

    def _project(self) -> None:
        """Clip the weights of risk indicators at 0 after a step (projected gradient)."""
        weights = self.regression._weights
        for name in self._non_negative:
            if weights.get(name, 0.0) < 0.0:
                weights[name] = 0.0

    def _corrected(self, probability: float) -> float:
        """The regression's probability with its log-odds lowered by log(:meth:`positive_weight`)."""
        weight = self.positive_weight()
        return probability / (probability + weight * (1.0 - probability))

    def _contributions(self, x: dict[str, float]) -> dict[str, float]:
        """Each feature's log-odds contribution: weight × scaled value."""
        weights = self.regression._weights
        scaled = self.scaler.transform_one(self._dense(x))
        return {name: weights.get(name, 0.0) * value for name, value in scaled.items()}


def upgraded(state: dict[str, Any]) -> dict[str, Any]:
    """A version-2 checkpoint (the hand-written scorer) as version 3; other states unchanged.

    Version 2 kept per feature ``[mean, M2, weight, AdaGrad sum]`` over all
    labels: the scaler gets count = labels and variance = M2 / labels, RMSProp
    the sum / ``gradient_memory`` (the same step sizes); its intercept's
    AdaGrad sum has no River counterpart and is dropped; the drift test
    starts afresh.
    """
    if (state.get("model"), state.get("version")) != (RiskScorer.STATE_MODEL, 2):
        return state
    labels, memory = state["labels"], state["settings"]["gradient_memory"]
    params = state["params"]
    settings = {**state["settings"], "max_features": max(state["settings"]["max_features"], 160)}
    fresh = RiskScorer(**{**settings, "threshold": AlertThreshold.from_state(state["threshold"])})
    return {
        **state, "version": 3, "settings": fresh._settings(), "names": list(params),
        "scaler": {"counts": dict.fromkeys(params, labels), "means": {n: p[0] for n, p in params.items()},
                   "vars": {n: p[1] / labels if labels else 0.0 for n, p in params.items()}},
        "weights": {n: p[2] for n, p in params.items()}, "g2": {n: p[3] / memory for n, p in params.items()},
        "iterations": 0, "metrics": upgraded_metrics(state["metrics"]), "drift": fresh._drift_state(),
    }


def _reasons(raw: dict[str, float], x: dict[str, float], top: int) -> list[RiskReason]:
    """The ``top`` feature groups with the largest positive log-odds contributions, as reasons."""
    grouped: dict[str, float] = {}
    for name, contribution in raw.items():
        group = FEATURE_GROUPS.get(name, name)
        grouped[group] = grouped.get(group, 0.0) + contribution
    ranked = sorted((item for item in grouped.items() if item[1] > 0), key=lambda item: (-item[1], item[0]))
    return [
        RiskReason(kind="feature", name=name, text=feature_reason(name, x), contribution=contribution)
        for name, contribution in ranked[:top]
    ]


def _mean(n: float, mean: float) -> stats.Mean:
    """A River running mean that has seen ``n`` values averaging ``mean``."""
    restored = stats.Mean()
    restored.n, restored._mean = n, mean
    return restored


def _vector(values: dict[str, float]) -> utils.VectorDict:
    """A River vector holding ``values`` in their order."""
    vector = utils.VectorDict()
    for name, value in values.items():
        vector[name] = value
    return vector


def _amount(x: dict[str, float]) -> float:
    """The payment amount, recovered from its ``log_amount`` feature (0 when absent)."""
    return math.expm1(x.get("log_amount", 0.0))
