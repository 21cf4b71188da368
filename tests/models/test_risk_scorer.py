"""A shop's payments are scored as they arrive; the scorer learns from chargebacks days later."""

from __future__ import annotations

import json
import math
import random
import zlib

import pytest
from sklearn.metrics import roc_auc_score

from models.risk import AlertThreshold, PendingLabels, RiskScorer
from streams.tools.evaluation.risk import RiskReplay

DAY = 86400.0
HOME = ("DE", "FR", "NL", "IT")


def shop_stream(seed: int, customers: int = 250, days: float = 12.0, fraud_share: float = 0.03):
    """Payments and late labels of a small shop, in event time, with planted account takeovers.

    A takeover pays 2-8x the customer's usual amount, each with probability 0.7
    from a new device, with a new card, from a foreign IP country. Legit noise:
    travel (IP abroad, 8 %), new phones (5 %), big purchases (4 %). Frauds are
    labelled 1-3 days later; a third of legit payments are reviewed within
    hours; the rest matures unlabelled.
    """
    rng = random.Random(seed)
    events, frauds = [], set()

    def emit(hours_later: float, topic: str, record: dict) -> None:
        events.append((ts + hours_later * 3600, topic, record))

    for c in range(customers):
        customer, home, usual = f"c{c}", rng.choice(HOME), rng.lognormvariate(3.5, 0.7)
        events.append((rng.uniform(0, DAY), "clicks", {"customer_id": customer, "session_id": f"s{c}"}))
        ts, n = rng.uniform(0, DAY), 0
        while ts < days * DAY:
            payment_id, n = f"{customer}-{n}", n + 1
            if n > 3 and rng.random() < fraud_share:
                frauds.add(payment_id)
                amount = usual * rng.uniform(2, 8)
                card = f"stolen-{payment_id}" if rng.random() < 0.7 else f"card-{c}"
                device = f"bot-{payment_id}" if rng.random() < 0.7 else f"phone-{c}-0"
                ip_country = rng.choice(("NG", "RU", "VN", "BR")) if rng.random() < 0.7 else home
                emit(rng.uniform(24, 72), "labels", {"payment_id": payment_id, "is_fraud": True})
            else:
                amount = usual * rng.lognormvariate(0, 0.4) * (4 if rng.random() < 0.04 else 1)
                card, device = f"card-{c}", f"phone-{c}-{int(rng.random() < 0.05)}"
                ip_country = rng.choice(("ES", "US")) if rng.random() < 0.08 else home
                if rng.random() < 0.33:
                    emit(rng.uniform(1, 8), "labels", {"payment_id": payment_id, "is_fraud": False})
            emit(0, "payments", {
                "payment_id": payment_id, "customer_id": customer, "amount": round(amount, 2), "currency": "EUR",
                "method": rng.choice(("card", "card", "paypal")), "card_fingerprint": card, "device_id": device,
                "ip_country": ip_country, "billing_country": home,
            })
            ts += rng.expovariate(1 / (rng.uniform(0.5, 2.0) * DAY))
    events.sort(key=lambda event: event[0])
    return [(topic, {**record, "ts": ts}) for ts, topic, record in events], frauds


def replayed(scorer: RiskScorer, seed: int = 1) -> tuple[RiskReplay, set[str]]:
    events, frauds = shop_stream(seed)
    replay = RiskReplay(scorer=scorer, pending=PendingLabels(maturity_seconds=5 * DAY))
    for topic, record in events:
        replay.apply(topic, record)
    return replay, frauds


@pytest.fixture(scope="module")
def shop() -> tuple[RiskReplay, set[str]]:
    return replayed(RiskScorer())


def test_planted_fraud_is_ranked_high_after_warm_up(shop: tuple[RiskReplay, set[str]]) -> None:
    replay, frauds = shop
    after_warm_up = replay.scored[len(replay.scored) // 5:]
    truth = [p.payment_id in frauds for p in after_warm_up]
    assert sum(truth) >= 30
    assert roc_auc_score(truth, [p.score for p in after_warm_up]) >= 0.95
    assert replay.scorer.metrics()["roc_auc"] >= 0.95  # the scorer's own progressive window agrees


def test_the_switch_from_rules_to_model_is_visible(shop: tuple[RiskReplay, set[str]]) -> None:
    replay, _ = shop
    modes = [p.mode for p in replay.scored]
    switch = modes.index("model")
    assert modes[0] == "rules" and set(modes[switch:]) == {"model"} and switch > 0
    assert replay.scorer.metrics()["model_mode"] == 1.0


def test_cold_start_needs_enough_labels_and_frauds() -> None:
    scorer = RiskScorer(min_labels=50, min_positives=5)
    suspicious = {"amount_z": 6.0, "new_device": 1.0, "country_mismatch": 1.0}
    assessed = scorer.assess(suspicious)
    assert (assessed.mode, assessed.model_version) == ("rules", "rules-0")
    assert [r.name for r in assessed.reasons] == ["amount_z", "country_mismatch", "new_device"]
    for _ in range(60):
        scorer.learn_one({"amount_z": 0.0}, False)
    assert scorer.mode == "rules"  # plenty of labels, but no fraud yet
    for _ in range(5):
        scorer.learn_one(suspicious, True)
    assert scorer.assess(suspicious).mode == "model"


def test_explanations_point_at_the_planted_signal(shop: tuple[RiskReplay, set[str]]) -> None:
    replay, frauds = shop
    # A stolen card also makes two cards in the hour when the customer paid recently.
    planted = {"amount_z", "log_amount", "new_card", "cards_1h", "new_device", "new_ip_country", "country_mismatch"}
    late_frauds = [p for p in replay.scored[len(replay.scored) // 2:] if p.payment_id in frauds]
    for payment in late_frauds:
        reasons = replay.scorer.explain_one(payment.features, top=3)
        assert reasons and {r.name for r in reasons} <= planted, reasons
        assert all(r.contribution > 0 and r.text for r in reasons)


def test_threshold_by_rate_hits_the_target_on_a_moving_score_stream() -> None:
    rng = random.Random(3)
    threshold = AlertThreshold.for_alert_rate(0.05, window=2000)
    alerts = []
    for i in range(20_000):
        score = rng.betavariate(1, 30 if i < 10_000 else 8)  # scores shift upward half way
        alerts.append(threshold.alerts(score))
        threshold.observe(score)
    for part in (alerts[2000:10_000], alerts[12_000:]):
        assert 0.05 * 0.8 <= sum(part) / len(part) <= 0.05 * 1.2
    restored = AlertThreshold.from_state(json.loads(json.dumps(threshold.state_dict())))
    assert restored.value() == threshold.value()


def test_two_workers_merged_score_like_one() -> None:
    events, frauds = shop_stream(seed=2)
    single = RiskReplay(pending=PendingLabels(maturity_seconds=5 * DAY))
    workers = [RiskScorer(), RiskScorer()]
    pairs = RiskReplay(scorer=workers[0], pending=PendingLabels(maturity_seconds=5 * DAY))
    learned_since_sync = [0, 0]
    for topic, record in events:
        single.apply(topic, record)
        # Labels and maturity land on the worker owning the payment id's partition.
        owner = zlib.crc32(record["payment_id"].encode()) % 2 if topic == "labels" else 0
        pairs.scorer = workers[owner]
        before = workers[owner].labels
        pairs.apply(topic, record)
        learned_since_sync[owner] += workers[owner].labels - before
        if sum(learned_since_sync) >= 100:
            sync(workers, learned_since_sync)
    sync(workers, learned_since_sync)
    assert workers[0].labels == workers[1].labels == single.scorer.labels
    late = slice(len(single.scored) // 3, None)
    truth = [p.payment_id in frauds for p in single.scored[late]]
    one = roc_auc_score(truth, [p.score for p in single.scored[late]])
    two = roc_auc_score(truth, [p.score for p in pairs.scored[late]])
    assert abs(one - two) <= 0.02


def sync(workers: list[RiskScorer], learned_since_sync: list[int]) -> None:
    """What the model-sync topic does: every worker merges all workers' states, weighted by new labels."""
    states = [(worker.state_dict(), max(n, 1)) for worker, n in zip(workers, learned_since_sync)]
    for worker in workers:
        worker.merge(states)
    learned_since_sync[:] = [0] * len(workers)


def test_merge_is_a_weighted_average_that_counts_every_label_once() -> None:
    a = replayed(RiskScorer(), seed=4)[0].scorer.state_dict()
    b = replayed(RiskScorer(), seed=6)[0].scorer.state_dict()
    alone = RiskScorer.from_state(a)
    alone.merge([(a, 1.0)])
    assert (alone.labels, alone.positives, alone.regression.intercept) == (a["labels"], a["positives"], a["intercept"])
    own = alone.state_dict()
    for part in ("weights", "g2"):
        assert own[part] == pytest.approx(a[part], rel=1e-9, abs=1e-12)
    for moment in ("means", "vars"):
        assert own["scaler"][moment] == pytest.approx(a["scaler"][moment], rel=1e-9, abs=1e-12)
    assert own["scaler"]["counts"] == a["scaler"]["counts"]
    merged = RiskScorer()
    merged.merge([(a, 3.0), (b, 1.0)])
    assert merged.labels == a["labels"] + b["labels"] and merged.positives == a["positives"] + b["positives"]
    assert merged.regression.intercept == pytest.approx(0.75 * a["intercept"] + 0.25 * b["intercept"])
    weight = merged.regression.weights["new_card"]
    assert weight == pytest.approx(0.75 * a["weights"]["new_card"] + 0.25 * b["weights"]["new_card"])
    mean = merged.scaler.means["amount_z"]
    assert mean == pytest.approx(0.75 * a["scaler"]["means"]["amount_z"] + 0.25 * b["scaler"]["means"]["amount_z"])


def test_learning_from_a_checkpoint_continues_identically() -> None:
    events, _ = shop_stream(seed=5, customers=80, days=6)
    half = len(events) // 2
    straight = RiskReplay(pending=PendingLabels(maturity_seconds=2 * DAY))
    for topic, record in events:
        straight.apply(topic, record)
    first = RiskReplay(pending=PendingLabels(maturity_seconds=2 * DAY))
    for topic, record in events[:half]:
        first.apply(topic, record)
    wire = json.loads(json.dumps({
        "scorer": first.scorer.state_dict(), "pending": first.pending.state_dict(),
        "histories": {c: h.state_dict() for c, h in first.histories.items()},
    }))
    resumed = RiskReplay(
        scorer=RiskScorer.from_state(wire["scorer"]), pending=PendingLabels.from_state(wire["pending"]),
        histories={c: type(h).from_state(wire["histories"][c]) for c, h in first.histories.items()},
    )
    for topic, record in events[half:]:
        resumed.apply(topic, record)
    same = json.dumps(resumed.scorer.state_dict(), sort_keys=True) == json.dumps(straight.scorer.state_dict(), sort_keys=True)
    assert same
    assert resumed.pending.stats() == straight.pending.stats()


def test_a_checkpoint_of_the_hand_written_scorer_scores_the_same_after_the_upgrade() -> None:
    """Version 2 (numpy scorer): per feature [mean, M2, weight, AdaGrad sum]; it becomes River's numbers."""
    settings = {"learning_rate": 0.2, "l2": 1e-4, "gradient_memory": 3000.0, "min_labels": 40, "min_positives": 5,
                "replay_frauds": 64, "max_positive_weight": 50.0, "max_features": 64, "metrics_window": 2000,
                "non_negative": ["new_device"]}
    old = {
        "model": "RiskScorer", "version": 2, "settings": settings, "labels": 100, "positives": 10,
        "merged_labels": 0, "merged_positives": 0, "intercept": -1.5, "intercept_g2": 4.0,
        "params": {"amount_z": [0.5, 400.0, 1.2, 9.0], "new_device": [0.1, 9.0, 0.8, 3.0]},
        "replay": [{"amount_z": 5.0, "new_device": 1.0}], "replay_cursor": 0,
        "threshold": AlertThreshold.fixed(0.5).state_dict(),
        "metrics": {"model": "ProgressiveRiskMetrics", "version": 1, "window": 2000, "scored": 2, "labels": 2,
                    "positives": 1, "decisions": [True, False], "labelled": [[0.9, True, True], [0.1, False, False]]},
    }
    scorer = RiskScorer.from_state(json.loads(json.dumps(old)))
    x = {"amount_z": 4.0, "new_device": 1.0}
    log_odds = -1.5 + 1.2 * (4.0 - 0.5) / (400.0 / 100) ** 0.5 + 0.8 * (1.0 - 0.1) / (9.0 / 100) ** 0.5 - math.log(9.0)
    assert scorer.mode == "model"
    assert scorer.score_one(x) == pytest.approx(1 / (1 + math.exp(-log_odds)), rel=1e-12)
    assert scorer.metrics()["roc_auc"] == 1.0 and scorer.metrics()["fraud_amount_caught"] == 0.0
    merged = RiskScorer(min_labels=40, min_positives=5)  # a worker already upgraded, merging an old one's state
    merged.merge([(old, 1.0)])
    assert merged.score_one(x) == pytest.approx(scorer.score_one(x), rel=1e-12)
    scorer.learn_one(x, True)  # and it keeps learning
    assert scorer.state_dict()["version"] == 3
