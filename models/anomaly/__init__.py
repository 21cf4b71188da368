"""Traffic anomalies: per-minute shop signals in event time, scored against their usual values.

Start reading at :class:`~models.anomaly.monitor.TrafficMonitor`: traffic
records (views, add-to-carts, orders, payments, dead letters) are counted into
one-minute event-time buckets, shop-wide and per category / country / payment
method; each closed minute is scored and learned by that scope's
:class:`TrafficAnomalyDetector` (a River anomaly detector: each signal
against its usual value in standard deviations), and anomalous minutes are
grouped into episodes, one :class:`AnomalyAlert` each, saying which signals
moved against what usual value.
"""

from models.anomaly.detector import COUNTERS, SIGNALS, Moved, TrafficAnomalyDetector
from models.anomaly.monitor import AnomalyAlert, TrafficMonitor, TrafficUpdate, counters_of, scopes_of
from models.base import ContractCase

__all__ = ["AnomalyAlert", "CONTRACT_CASES", "COUNTERS", "Moved", "SIGNALS", "TrafficAnomalyDetector",
           "TrafficMonitor", "TrafficUpdate", "counters_of", "scopes_of"]

#: Minutes of a shop with a little deterministic variation, then a checkout break and a dead-letter jump.
_MINUTES = [
    ({"views": 100 + k % 7 - 3, "carts": 20 + k % 3 - 1, "orders": 8 + k % 2, "payments": 8 + k % 2,
      "declined": k % 3 // 2, "failed": k % 11 // 10, "new_devices": k % 4 // 3, "dead": k % 5 // 4,
      "events": 140 + k % 7}, None)
    for k in range(40)
]
_PREDICT = [{"views": 100, "carts": 20, "orders": 8, "payments": 8, "declined": 0, "failed": 0, "new_devices": 0,
             "dead": 0, "events": 140},
            {"views": 100, "carts": 20, "orders": 0, "payments": 0, "declined": 0, "failed": 0, "new_devices": 0,
             "dead": 60, "events": 200}]

CONTRACT_CASES = [
    ContractCase(
        name="TrafficAnomalyDetector",
        factory=lambda: TrafficAnomalyDetector(warmup=10),
        samples=_MINUTES,
        predict_inputs=_PREDICT,
    ),
]
