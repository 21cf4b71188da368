"""Search River drift-detector settings on the risk scorer's fraud-label rank errors.

Run ``python -m streams.tools.evaluation.risk_drift`` (``--help`` for options).
Each run replays a stream as :mod:`streams.tools.evaluation.risk` does, with a
scorer that never detects a drift (so never adapts) and keeps each fraud
label's rank error, the number :class:`~models.risk.RiskScorer` feeds its drift
test: simulator seeds with and without the planted fraud drift, and the PaySim
sample. Every River detector setting is then replayed over those errors. Up to
a setting's first detection the scores are exactly what the adapting scorer
would have given, so its first detection after the drift (``labels`` learned
from the drift time on, as ``labels_from_drift_to_detection``) and whether it
fired before the drift or on a stream without drift are exact; later
detections are not (the adapted scorer would score differently).

First comes one line per stream with what the never-adapting scorer let
through (``summary_line`` of the risk evaluation: fraud money at the alert
budget on the second half, AUC), the baseline for the adaptation's effect.
For Page-Hinkley the report also gives ``worst_no_drift``: the largest test
statistic (the sum's rise above its minimum) on a stream or stretch without
drift, as a share of the threshold: the margin to a false drift.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from river import drift

from models.risk import RiskScorer
from streams.tools.evaluation.risk import DEFAULT_PAYSIM, evaluate_paysim, evaluate_simulator, summary_line


class TracedScorer(RiskScorer):
    """A risk scorer whose drift test never fires, keeping ``(labels learned, rank error)`` per fraud label."""

    def __init__(self, **params: Any) -> None:
        super().__init__(**{**params, "drift_threshold": math.inf})
        self.trace: list[tuple[int, float]] = []

    def learn_one(self, x: dict[str, float], y: bool, *, score: float | None = None,
                  alerted: bool | None = None) -> None:
        if y:
            self.trace.append((self.labels + 1, self._rank_error(self.score_one(x) if score is None else score)))
        super().learn_one(x, y, score=score, alerted=alerted)


@dataclass(frozen=True)
class ErrorTrace:
    """One stream's fraud-label rank errors and, with a planted drift, the labels learned before it."""

    name: str
    errors: list[tuple[int, float]]
    labels_at_drift: int | None
    #: The risk evaluation's summary line of the never-adapting run.
    summary: dict[str, Any]


def traces(seeds: list[int], paysim: Path | None) -> list[ErrorTrace]:
    """The error traces of the simulator seeds without and with drift, and of PaySim if given."""
    runs = []
    for seed, planted in itertools.product(seeds, (False, True)):
        scorer = TracedScorer()
        report = evaluate_simulator(seed, planted, scorer, through_json=False)
        runs.append(ErrorTrace(f"seed {seed}{' drift' if planted else ''}", scorer.trace,
                               report.get("labels_at_drift"), summary_line(report)))
    if paysim is not None:
        scorer = TracedScorer()
        report = evaluate_paysim(paysim, scorer=scorer)
        runs.append(ErrorTrace("paysim", scorer.trace, None, summary_line(report)))
    return runs


def replay_detector(detector: drift.base.DriftDetector, trace: ErrorTrace) -> dict[str, Any]:
    """Feed the errors to ``detector``: false detections, the first one after the drift, the worst statistic."""
    false, found, worst = 0, None, 0.0
    threshold = getattr(detector, "threshold", None)
    for labels, error in trace.errors:
        detector.update(error)
        before = trace.labels_at_drift is None or labels <= trace.labels_at_drift
        if threshold is not None and before and detector._x_mean.n >= detector.min_instances:
            worst = max(worst, (detector._sum_increase - detector._min_increase) / threshold)
        if detector.drift_detected:
            if before:
                false += 1
            elif found is None:
                found = labels - trace.labels_at_drift
    return {"false": false, "found": found, "worst": worst}


def search(runs: list[ErrorTrace], settings: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per detector setting: false drifts, the labels to each planted drift's detection, the margin."""
    rows = []
    for kind, params in settings:
        results = {run.name: replay_detector(getattr(drift, kind)(**params), run) for run in runs}
        rows.append({
            "detector": kind, **params,
            "false_drifts": sum(r["false"] for r in results.values()),
            "labels_to_detection": {n: r["found"] for n, r in results.items() if n.endswith("drift")},
            "worst_no_drift": round(max(r["worst"] for r in results.values()), 3) if kind == "PageHinkley" else None,
        })
    return rows


def grid() -> list[tuple[str, dict[str, Any]]]:
    """Page-Hinkley (mode up) over delta, threshold and minimum frauds, and ADWIN over delta."""
    settings = [("PageHinkley", {"min_instances": m, "delta": d, "threshold": t, "mode": "up"})
                for m, d, t in itertools.product((10, 30), (0.05, 0.1, 0.15), (1.0, 1.2, 1.5, 2.0, 2.5))]
    return settings + [("ADWIN", {"delta": d, "min_window_length": 5, "grace_period": 5, "clock": 1})
                       for d in (0.002, 0.05, 0.3)]


def main(argv: list[str] | None = None) -> None:
    """Command line: one JSON line per setting."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, nargs="+", default=[7, 8, 9, 10, 11, 12], help="simulator seeds")
    parser.add_argument("--paysim", type=Path, default=DEFAULT_PAYSIM, help="path to paysim_sample.csv")
    parser.add_argument("--skip-paysim", action="store_true")
    args = parser.parse_args(argv)
    runs = traces(args.seed, None if args.skip_paysim else args.paysim)
    for run in runs:
        print(json.dumps({"never_adapting": run.name, **run.summary}, default=float), flush=True)
    for row in search(runs, grid()):
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
