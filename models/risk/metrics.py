"""Progressive risk metrics, on River's metrics, updated as payments are scored and as labels arrive.

A label is scored with the score and alert decision the payment got *when it
was scored* (kept with its pending features), so the metrics measure what the
stream actually did. Over the last ``window`` labelled payments:

- ``roc_auc``: ``river.metrics.RollingROCAUC`` (exact over its window, unlike
  ``metrics.ROCAUC``, whose 10 default thresholds were off by 0.01-0.19 AUC on
  skewed fraud scores; ties are ranked slightly differently from
  scikit-learn's rank statistic: 0.9717 vs 0.9723 on a tied test window);
- ``precision``, ``recall``, ``f1`` of the alerts: ``metrics.Precision``,
  ``metrics.Recall``, ``metrics.F1`` reading one
  ``utils.Rolling(metrics.ConfusionMatrix)`` (one window instead of three);
- ``log_loss`` of the scores: ``utils.Rolling(metrics.LogLoss)``;
- money, which River has no metric for: ``fraud_amount_caught`` (fraud
  payments that alerted), ``fraud_amount_missed`` (frauds let through) and
  ``legit_amount_alerted``, summed over the window.

The alert rate is over the last ``window`` scored payments
(``utils.Rolling(stats.Mean)``). The window of labelled payments is kept as
plain data for checkpoints; restoring replays it into fresh River metrics.
Memory: two windows of ``window`` entries, plus River's own windows.

>>> metrics = ProgressiveRiskMetrics(window=100)
>>> for score, alerted, is_fraud, amount in [(0.9, True, True, 50.0), (0.8, True, False, 10.0),
...                                          (0.3, False, True, 20.0), (0.1, False, False, 5.0)]:
...     metrics.record_decision(alerted)
...     metrics.record_label(score, alerted, is_fraud, amount)
>>> {name: round(value, 3) for name, value in metrics.as_dict().items()}  # doctest: +NORMALIZE_WHITESPACE
{'scored': 4, 'alert_rate': 0.5, 'labels': 4, 'positives': 2, 'roc_auc': 0.75, 'precision': 0.5, 'recall': 0.5,
 'f1': 0.5, 'log_loss': 0.756, 'fraud_amount_caught': 50.0, 'fraud_amount_missed': 20.0,
 'legit_amount_alerted': 10.0}
"""

from __future__ import annotations

from collections import deque
from typing import Any, Self

from river import metrics, stats, utils

from models.base import check_state_tag


class ProgressiveRiskMetrics:
    """ROC AUC, precision/recall/F1 at the alert threshold, log loss, fraud money, alert rate, label counts."""

    STATE_MODEL = "ProgressiveRiskMetrics"
    STATE_VERSION = 2

    def __init__(self, window: int = 2000) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        self.window = window
        self.scored = 0
        self.labels = 0
        self.positives = 0
        self._decisions: deque[bool] = deque(maxlen=window)
        self._alert_rate = utils.Rolling(stats.Mean, window_size=window)
        #: (score at scoring time, alerted, is_fraud, amount) of the last labelled payments.
        self._labelled: deque[tuple[float, bool, bool, float]] = deque(maxlen=window)
        self._auc = metrics.RollingROCAUC(window_size=window)
        #: One rolling confusion matrix of the alerts, read by River's precision, recall and F1.
        self._alerts_matrix = utils.Rolling(metrics.ConfusionMatrix, window_size=window)
        matrix = self._alerts_matrix.obj
        self._alert_quality = {"precision": metrics.Precision(cm=matrix), "recall": metrics.Recall(cm=matrix),
                               "f1": metrics.F1(cm=matrix)}
        self._log_loss = utils.Rolling(metrics.LogLoss, window_size=window)

    def record_decision(self, alerted: bool) -> None:
        """Count one scored payment and whether it alerted."""
        self.scored += 1
        self._decisions.append(alerted)
        self._alert_rate.update(float(alerted))

    def record_label(self, score: float, alerted: bool, is_fraud: bool, amount: float = 0.0) -> None:
        """Count one label against the score and alert the payment got when scored."""
        self.labels += 1
        self.positives += int(is_fraud)
        self._labelled.append((score, alerted, is_fraud, amount))
        self._auc.update(is_fraud, score)
        self._alerts_matrix.update(is_fraud, alerted)
        self._log_loss.update(is_fraud, score)

    def roc_auc(self) -> float | None:
        """ROC AUC over the labelled window (``None`` until both classes are in it)."""
        frauds = sum(entry[2] for entry in self._labelled)
        if not 0 < frauds < len(self._labelled):
            return None
        return self._auc.get()

    def as_dict(self) -> dict[str, float]:
        """The metrics as numbers; the ones not yet defined are left out."""
        result: dict[str, float] = {"scored": self.scored}
        if self._decisions:
            result["alert_rate"] = self._alert_rate.get()
        result["labels"] = self.labels
        result["positives"] = self.positives
        auc = self.roc_auc()
        if auc is not None:
            result["roc_auc"] = auc
        alerted = any(alert for _, alert, _, _ in self._labelled)
        frauds = any(fraud for _, _, fraud, _ in self._labelled)
        if alerted:
            result["precision"] = self._alert_quality["precision"].get()
        if frauds:
            result["recall"] = self._alert_quality["recall"].get()
        if alerted and frauds:
            result["f1"] = self._alert_quality["f1"].get()
        if self._labelled:
            result["log_loss"] = self._log_loss.get()
            result["fraud_amount_caught"] = sum(a for _, alert, fraud, a in self._labelled if fraud and alert)
            result["fraud_amount_missed"] = sum(a for _, alert, fraud, a in self._labelled if fraud and not alert)
            result["legit_amount_alerted"] = sum(a for _, alert, fraud, a in self._labelled if alert and not fraud)
        return result

    def clone(self) -> Self:
        """The same window size, nothing recorded."""
        return type(self)(self.window)

    def state_dict(self) -> dict[str, Any]:
        """Plain-data checkpoint: counters and both windows."""
        return {
            "model": self.STATE_MODEL,
            "version": self.STATE_VERSION,
            "window": self.window,
            "scored": self.scored,
            "labels": self.labels,
            "positives": self.positives,
            "decisions": list(self._decisions),
            "labelled": [list(entry) for entry in self._labelled],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """Rebuild the metrics from :meth:`state_dict` output (the windows replayed into River's metrics)."""
        state = upgraded_metrics(state)
        check_state_tag(state, cls.STATE_MODEL, cls.STATE_VERSION)
        restored = cls(state["window"])
        for alerted in state["decisions"]:
            restored.record_decision(alerted)
        for score, alerted, is_fraud, amount in state["labelled"]:
            restored.record_label(score, alerted, is_fraud, amount)
        restored.scored = state["scored"]
        restored.labels = state["labels"]
        restored.positives = state["positives"]
        return restored


def upgraded_metrics(state: dict[str, Any]) -> dict[str, Any]:
    """A version-1 checkpoint (no amounts) as version 2, its labelled payments at amount 0; others unchanged."""
    if (state.get("model"), state.get("version")) != (ProgressiveRiskMetrics.STATE_MODEL, 1):
        return state
    return {**state, "version": 2, "labelled": [[*entry, 0.0] for entry in state["labelled"]]}
