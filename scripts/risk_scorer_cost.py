"""Micro-benchmark: µs per payment to score (``assess``) and to learn (``learn_one``) with the risk scorer.

Feature snapshots and truths come from a simulated shop (``evaluate_simulator``'s
replay, seed 7, no drift); the timed loop then assesses every snapshot and learns
it with its true label, in stream order, on a fresh scorer. Best of ``--repeat``
runs of process CPU time, since the machine is shared::

    PYTHONPATH=. python scripts/risk_scorer_cost.py --repeat 3
"""

from __future__ import annotations

import argparse
import time

from models.risk import RiskScorer
from streams.tools.evaluation.risk import RiskReplay, replay_wire


def snapshots(seed: int, days: float) -> list[tuple[dict[str, float], bool]]:
    """Feature snapshots and truths of a simulated shop's payments, in scoring order."""
    from streams.tools.simulation import ShopSimulator, SimulatorConfig

    simulator = ShopSimulator(SimulatorConfig(seed=seed, fraud_drift_at=None, days=days))
    replay = RiskReplay()
    replay_wire(((event.topic, event.value) for event in simulator.events()), replay, through_json=False)
    frauds = simulator.ground_truth()["fraud_payments"]
    return [(p.features, p.payment_id in frauds) for p in replay.scored]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--days", type=float, default=14.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    data = snapshots(args.seed, args.days)
    best_assess = best_learn = float("inf")
    for _ in range(args.repeat):
        scorer = RiskScorer(min_labels=50, min_positives=5)
        assess = learn = 0.0
        for x, y in data:
            started = time.process_time()
            assessment = scorer.assess(x)
            scored = time.process_time()
            scorer.learn_one(x, y, score=assessment.score, alerted=assessment.alert)
            learn += time.process_time() - scored
            assess += scored - started
        best_assess, best_learn = min(best_assess, assess), min(best_learn, learn)
    n = len(data)
    print(f"payments {n}, frauds {sum(y for _, y in data)}: assess {best_assess / n * 1e6:.1f} µs, "
          f"learn {best_learn / n * 1e6:.1f} µs, total {(best_assess + best_learn) / n * 1e6:.1f} µs per payment")


if __name__ == "__main__":
    main()
