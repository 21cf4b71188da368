"""A shop sends its own fraud stack's signals with each payment; the scorer learns them beside its own features."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

from models.risk import PaymentHistory, RiskScorer
from streams.pipeline.validation import EventValidator
from streams.tools.evaluation.risk import RiskReplay, compare_with_batch, replay_wire
from streams.tools.replay import ReplayFormat, ReplayOptions, read_source
from streams.tools.sources.creditcard import read_creditcard

SIGNALS = [f"V{i}" for i in range(1, 29)]


def write_creditcard(path: Path, rows: int = 3000, fraud_share: float = 0.03, seed: int = 5) -> Path:
    """A ULB-layout file: 28 signals, a handful of which move for frauds (noisily); some card checks of 0."""
    rng = random.Random(seed)
    shift = {"V3": -1.6, "V4": 1.4, "V10": -1.8, "V12": -1.5, "V14": -2.0, "V17": -1.2}
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_NONNUMERIC)
        writer.writerow(["Time", *SIGNALS, "Amount", "Class"])
        for n in range(rows):
            fraud = rng.random() < fraud_share
            values = [rng.gauss(shift.get(name, 0.0) * fraud * rng.uniform(0.2, 1.5), 1.0) for name in SIGNALS]
            amount = 0.0 if rng.random() < 0.02 else round(rng.lognormvariate(3.5 if fraud else 3.0, 1.2), 2)
            writer.writerow([float(n * 4), *values, amount, str(int(fraud))])
    return path


def test_payment_features_are_validated_with_a_reason() -> None:
    validator = EventValidator(max_bytes=1 << 16)
    payment = {"event_id": "e1", "payment_id": "p1", "order_id": "o1", "ts": "2026-11-22T06:01:17Z",
               "customer_id": "c1", "amount": 0, "currency": "EUR", "method": "card"}
    accepted = validator.check("payments", json.dumps({**payment, "features": {"V1": -1.5, "score_7": 3}}).encode())
    assert accepted.record["features"] == {"V1": -1.5, "score_7": 3.0} and accepted.record["amount"] == 0.0
    rejected = {
        "too many": {f"f{i}": 1.0 for i in range(65)},
        "bad name": {"no spaces": 1.0},
        "long name": {"x" * 65: 1.0},
        "not a number": {"V1": "high"},
        "huge": {"V1": 1e300},
    }
    reasons = {case: validator.check("payments", json.dumps({**payment, "features": value}).encode()).reason
               for case, value in rejected.items()}
    assert "at most 64 items" in reasons["too many"]
    assert "features.no spaces" in reasons["bad name"] and "pattern" in reasons["bad name"]
    assert "at most 64 characters" in reasons["long name"]
    assert "valid number" in reasons["not a number"]
    assert "less than or equal" in reasons["huge"]


def test_shop_signals_become_features_and_reasons() -> None:
    history = PaymentHistory()
    x = history.features({"payment_id": "p1", "ts": 0.0, "amount": 0.0, "method": "card",
                          "features": {"V14": -4.25}})
    assert x["shop_V14"] == -4.25 and x["log_amount"] == 0.0
    scorer = RiskScorer(min_labels=20, min_positives=3)
    for i in range(200):
        fraud = i % 10 == 0
        scorer.learn_one({**x, "shop_V14": -4.0 if fraud else random.Random(i).gauss(0, 1)}, fraud)
    assert [reason.text for reason in scorer.explain_one(x, top=1)] == ["shop signal V14 = -4.25"]


def test_replay_reads_the_ulb_layout_with_delayed_labels(tmp_path: Path) -> None:
    path = write_creditcard(tmp_path / "cards.csv", rows=50)
    fmt, _, source = read_source([path], options=ReplayOptions(label_delay_hours=0.5))
    events = list(source.events)
    assert fmt is ReplayFormat.creditcard
    first_label = next(i for i, (topic, _, _) in enumerate(events) if topic == "labels")
    assert [topic for topic, _, _ in events[:first_label]] == ["payments"] * first_label == ["payments"] * 50
    assert set(events[0][2]["features"]) == set(SIGNALS)
    read, _ = source.account()
    assert read["payments"] == read["labels"] == 50 and read["zero amounts (card checks)"] >= 1


def test_online_scorer_with_shop_signals_matches_batch_logistic_regression(tmp_path: Path) -> None:
    path = write_creditcard(tmp_path / "cards.csv")
    cards = read_creditcard(path, label_delay_seconds=600.0)
    replay = RiskReplay(scorer=RiskScorer(min_labels=100, min_positives=5))
    assert replay_wire(((topic, value) for topic, _, value in cards.events()), replay) == 0
    truth = {label["payment_id"]: label["is_fraud"] for label in cards.labels}
    report = compare_with_batch(replay.scored, truth)
    assert report["frauds"] >= 60
    assert report["batch_auc_second_half"] > 0.9  # the signals carry the fraud: a fair bar
    assert report["online_auc_second_half"] >= report["batch_auc_second_half"]
    assert report["online_auc_second_half"] > 0.9
