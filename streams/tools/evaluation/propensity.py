"""Evaluate conversion propensity: the live score against a batch decision tree, on simulated and real sessions.

Run ``python -m streams.tools.evaluation.propensity`` (``--help`` for options), or
``kairos bench --suite propensity``. Each dataset becomes the sessions
stage's records in event-time order (:func:`~streams.pipeline.stages.sessions.session_record`,
with each customer's orders so far, as the customers stage sends them) and
goes through a :class:`~models.propensity.SessionTracker`, the stage's own
model: each session is scored at its clicks and learned when it ends (its
customer's next order, or 30 minutes of event time without a click).

Compared, on the same ended sessions in the order they ended:

- **live**: the score the stream served at each session's last click before
  its end (progressive: the model had learned only the sessions that ended
  before that minute), ROC AUC over the second half of the sessions (in the
  order they started) and over all;
- **River logistic regression** (one-hot ``last_action``, standard-scaled
  numbers): the same features at the last click, progressive (score, then
  learn) in the order the sessions started: the linear baseline;
- **batch scikit-learn ``DecisionTreeClassifier``**, its depth tuned by 3-fold
  cross-validation on the first half, trained on the first half's sessions
  (their features at the last click) and scored on the second half: the exact
  batch answer.

Datasets: the simulator (``ShopSimulator``: buying sessions end in an order,
others leave carts behind by segment) and, where present, the REES46 sample
in ``../shared/datasets/rees46-head`` (views, carts and purchases of a real
multi-category store; a purchase is the session's order: rows of one session
and second are one order).
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from river import compose, linear_model, preprocessing
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_score
from sklearn.tree import DecisionTreeClassifier

from models.propensity import FEATURES, ConversionClassifier, SessionTracker
from streams.pipeline.stages.sessions import session_record
from streams.pipeline.validation import EventValidator
from streams.tools.simulation import ShopSimulator, SimulatorConfig

REES46 = Path(__file__).resolve().parents[3] / ".." / "shared" / "datasets" / "rees46-head" / "user_behavior_sample.csv"
#: REES46 event types -> click actions (``purchase`` is an order).
REES46_ACTIONS = {"view": "view", "cart": "add_to_cart", "remove_from_cart": "remove_from_cart"}
DEPTHS = (2, 3, 4, 5, 6, 8, 10, 12)


class Customers:
    """Each customer's orders so far, as the customers stage holds them, to build session records."""

    def __init__(self) -> None:
        #: Customer -> orders, last order time, clicks.
        self.history: dict[str, tuple[int, float | None, int]] = {}

    def record(self, event_type: str, record: dict[str, Any]) -> dict[str, Any] | None:
        orders, last, clicks = self.history.get(record["customer_id"], (0, None, 0))
        found = session_record(event_type, record, orders, last, clicks)
        if event_type == "orders":
            orders, last = orders + 1, record["ts"]
        else:
            clicks += 1
        self.history[record["customer_id"]] = (orders, last, clicks)
        return found


def simulated_records(seed: int, customers: int, days: float) -> Iterator[dict[str, Any]]:
    """A simulated shop's clicks and orders as session records (validated, in event-time order)."""
    simulator = ShopSimulator(SimulatorConfig(seed=seed, customers=customers, days=days))
    validator, book = EventValidator(1 << 20), Customers()
    for event in simulator.events():
        if event.topic not in ("clicks", "orders"):
            continue
        raw = event.value if isinstance(event.value, bytes) else orjson.dumps(event.value)
        record = validator.check(event.topic, raw).record
        if record is not None and (found := book.record(event.topic, record)) is not None:
            yield found


def rees46_records(path: Path) -> Iterator[dict[str, Any]]:
    """The REES46 log as session records: views and carts are clicks, a session's purchases in one second one
    order."""
    book, ordered = Customers(), set()
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            ts = datetime.strptime(row["event_time"], "%Y-%m-%d %H:%M:%S UTC").timestamp()
            common = {"ts": ts, "customer_id": row["user_id"], "session_id": row["user_session"]}
            if row["event_type"] == "purchase":
                if (row["user_session"], ts) not in ordered:
                    ordered.add((row["user_session"], ts))
                    yield book.record("orders", common)
            elif (action := REES46_ACTIONS.get(row["event_type"])) is not None:
                price = float(row["price"]) if row["price"] else None
                yield book.record("clicks", {**common, "action": action, "price": price})


def run_live(records: Iterator[dict[str, Any]], grace_period: int, timeout: float) -> dict[str, Any]:
    """The stage's tracker over the records; every session's features at its last click, outcome, live score
    and start, in the order they started (at the data's end, the sessions still open time out: their outcome
    is in the data, as for the batch answer)."""
    tracker = SessionTracker(ConversionClassifier(grace_period=grace_period), timeout=timeout, warmup=0)
    tracker.learned_log = []
    started, count, last = time.perf_counter(), 0, None
    for record in records:
        tracker.add(record)
        count += 1
        last = record["ts"]
        if count % 256 == 0:
            tracker.flush()  # the stage scores once per batch
    if last is not None:  # the data ends: every session has its outcome in it (as the batch answer labels them)
        tracker.advance(last + timeout + 120.0)
    tracker.flush()
    ended = sorted(tracker.learned_log, key=lambda entry: entry[3])
    return {"ended": ended, "records": count, "seconds": time.perf_counter() - started,
            "rules": tracker.model.explain(5), "counts": tracker.counts}


def matrix(sessions: list[tuple[dict[str, Any], bool, float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """Features at the last click as numbers (``last_action`` one-hot) and outcomes."""
    numeric = [name for name in FEATURES if name != "last_action"]
    actions = ("view", "search", "add_to_cart", "remove_from_cart")
    rows = [[float(x[name]) for name in numeric] + [float(x["last_action"] == a) for a in actions]
            for x, *_ in sessions]
    return np.array(rows), np.array([converted for _, converted, *_ in sessions])


def river_logistic(sessions: list[tuple[dict[str, Any], bool, float, float]]) -> list[float]:
    """A River logistic regression's progressive scores (score, then learn) over the sessions in order."""
    numbers = compose.Select(*[name for name in FEATURES if name != "last_action"]) | preprocessing.StandardScaler()
    model = (numbers + (compose.Select("last_action") | preprocessing.OneHotEncoder())) | \
        linear_model.LogisticRegression()
    scores = []
    for x, converted, *_ in sessions:
        scores.append(model.predict_proba_one(x).get(True, 0.0))
        model.learn_one(x, converted)
    return scores


def batch_tree(sessions: list[tuple[dict[str, Any], bool, float, float]]) -> tuple[float, int]:
    """The batch decision tree: depth tuned by 3-fold CV on the first half, AUC on the second half."""
    half = len(sessions) // 2
    x, y = matrix(sessions)
    best = max(DEPTHS, key=lambda depth: cross_val_score(
        DecisionTreeClassifier(max_depth=depth, random_state=0), x[:half], y[:half], cv=3, scoring="roc_auc").mean())
    tree = DecisionTreeClassifier(max_depth=best, random_state=0).fit(x[:half], y[:half])
    return float(roc_auc_score(y[half:], tree.predict_proba(x[half:])[:, 1])), best


def evaluate(name: str, records: Iterator[dict[str, Any]], grace_period: int, timeout: float) -> dict[str, Any]:
    live = run_live(records, grace_period, timeout)
    sessions = live["ended"]
    half = len(sessions) // 2
    y = [converted for _, converted, *_ in sessions]
    scores = [score for _, _, score, _ in sessions]
    logistic = river_logistic(sessions)
    tree_auc, depth = batch_tree(sessions)
    return {
        "dataset": name, "records": live["records"], "sessions": len(sessions),
        "conversion_rate": round(sum(y) / len(y), 4),
        "live_auc_second_half": round(float(roc_auc_score(y[half:], scores[half:])), 4),
        "live_auc_all": round(float(roc_auc_score(y, scores)), 4),
        "river_logistic_auc_second_half": round(float(roc_auc_score(y[half:], logistic[half:])), 4),
        "batch_tree_auc_second_half": round(tree_auc, 4), "batch_tree_depth": depth,
        "records_per_second": round(live["records"] / live["seconds"]), "rules": live["rules"],
        "orders_without_session": live["counts"]["orders_without_session"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--days", type=float, default=14.0)
    parser.add_argument("--grace-period", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--rees46", type=Path, default=REES46, help="the REES46 sample (skipped when absent)")
    args = parser.parse_args(argv)
    results = [evaluate(f"simulator seed {seed}", simulated_records(seed, args.customers, args.days),
                        args.grace_period, args.timeout) for seed in args.seeds]
    if args.rees46.exists():
        # 4,999 rows: a tree needs a smaller grace period to grow at all.
        results.append(evaluate("REES46 sample", rees46_records(args.rees46), min(args.grace_period, 50),
                                args.timeout))
    for result in results:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
