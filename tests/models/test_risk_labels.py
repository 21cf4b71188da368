"""Late fraud labels meet the features their payment was scored with: once, and never lost."""

from __future__ import annotations

import json
import random

from models.risk import PendingLabels

DAY = 86400.0


def scored(pending: PendingLabels, payment_id: str, ts: float, amount_z: float = 0.0) -> list:
    return pending.add(payment_id, {"amount_z": amount_z}, score=0.1, alerted=False, ts=ts)


def test_a_chargeback_days_later_learns_from_the_features_at_scoring_time() -> None:
    pending = PendingLabels(maturity_seconds=7 * DAY)
    assert scored(pending, "p1", ts=0.0, amount_z=8.2) == []
    learned = pending.label("p1", True, ts=3 * DAY)
    assert learned.features == {"amount_z": 8.2} and learned.is_fraud and learned.source == "label"
    assert (learned.score, learned.alerted) == (0.1, False)
    assert pending.label("p1", True, ts=3 * DAY + 5) is None  # redelivered label
    assert pending.label("p1", False, ts=4 * DAY) is None  # a contradicting second label
    assert pending.stats()["repeated"] == 2 and pending.stats()["labelled"] == 1


def test_unlabelled_payments_mature_as_legit_or_are_dropped_by_setting() -> None:
    for learn_as_legit in (True, False):
        pending = PendingLabels(maturity_seconds=7 * DAY, learn_unlabelled_as_legit=learn_as_legit)
        scored(pending, "old", ts=0.0)
        scored(pending, "new", ts=5 * DAY)
        assert pending.expire(now=6.9 * DAY) == []
        matured = pending.expire(now=7 * DAY + 1)
        if learn_as_legit:
            assert [(p.payment_id, p.is_fraud, p.source) for p in matured] == [("old", False, "maturity")]
        else:
            assert matured == [] and pending.stats()["dropped"] == 1
        # A fraud label after maturity is not thrown away: a correction of the legit learned, or (dropped) learned.
        late = pending.label("old", True, ts=8 * DAY)
        assert (late.payment_id, late.is_fraud, late.features) == ("old", True, {"amount_z": 0.0})
        assert late.source == ("correction" if learn_as_legit else "label")
        assert pending.label("old", True, ts=8 * DAY + 1) is None  # the same label again: a repeat
        assert pending.stats()["corrected"] == int(learn_as_legit) and pending.stats()["repeated"] == 1
        assert pending.stats()["late"] == 0 and pending.stats()["pending"] == 1


def test_a_legit_label_after_maturity_confirms_and_a_label_after_the_resolved_window_is_late() -> None:
    pending = PendingLabels(maturity_seconds=7 * DAY)
    scored(pending, "a", ts=0.0)
    scored(pending, "b", ts=0.0)
    assert [p.payment_id for p in pending.expire(now=7 * DAY + 1)] == ["a", "b"]
    assert pending.label("a", False, ts=8 * DAY) is None  # learned as legit already: confirmed
    assert pending.stats()["confirmed"] == 1
    pending.expire(now=14 * DAY + 2)  # resolved ids are kept another maturity period, then forgotten
    assert pending.label("b", True, ts=15 * DAY) is None
    assert pending.stats()["late"] == 0 and pending.stats()["early_labels"] == 1  # waits as if early...
    pending.expire(now=30 * DAY)
    assert pending.stats()["unmatched"] == 1  # ...and is unmatched in the end


def test_a_version_2_checkpoint_restores_its_resolved_ids() -> None:
    pending = PendingLabels(maturity_seconds=DAY)
    scored(pending, "p", ts=0.0)
    pending.label("p", False, ts=10.0)
    state = pending.state_dict()
    state = state | {"version": 2, "resolved": [[k, ts, value[0]] for k, ts, value in state["resolved"]]}
    state["counts"] = {k: v for k, v in state["counts"].items() if k not in ("corrected", "confirmed")}
    restored = PendingLabels.from_state(state)
    assert restored.label("p", True, ts=20.0) is None and restored.stats()["repeated"] == 1


def test_a_label_arriving_before_its_snapshot_waits_for_it() -> None:
    pending = PendingLabels(maturity_seconds=DAY)
    assert pending.label("p1", True, ts=10.0) is None
    [learned] = scored(pending, "p1", ts=5.0)
    assert learned.is_fraud and pending.stats()["early_labels"] == 0
    assert scored(pending, "p1", ts=5.0) == []  # the snapshot redelivered: already learned
    pending.label("ghost", True, ts=20.0)
    pending.expire(now=2 * DAY)
    assert pending.stats()["unmatched"] == 1


def test_a_full_map_lets_the_oldest_payment_go_as_if_matured() -> None:
    pending = PendingLabels(maturity_seconds=30 * DAY, max_pending=3)
    for n in range(3):
        assert scored(pending, f"p{n}", ts=float(n)) == []
    [evicted] = scored(pending, "p3", ts=3.0)
    assert (evicted.payment_id, evicted.is_fraud, evicted.source) == ("p0", False, "capacity")
    assert pending.stats()["pending"] == 3


def test_no_label_is_learned_twice_or_lost_across_a_restart() -> None:
    """Labels and maturity around a checkpoint, with the tail redelivered after the restart."""
    events = [("pay", f"p{n}", n * 3600.0) for n in range(40)]
    events += [("label", f"p{n}", (n + 30) * 3600.0) for n in range(0, 40, 3)]
    events.sort(key=lambda event: event[2])

    def run(pending: PendingLabels, part: list) -> list[str]:
        learned = []
        for kind, payment_id, ts in part:
            if kind == "pay":
                learned += [p.payment_id for p in scored(pending, payment_id, ts)]
            else:
                hit = pending.label(payment_id, True, ts)
                learned += [hit.payment_id] if hit else []
            learned += [p.payment_id for p in pending.expire(now=ts)]
        return learned

    straight = run(PendingLabels(maturity_seconds=2 * DAY), events)
    first = PendingLabels(maturity_seconds=2 * DAY)
    before = run(first, events[:35])
    restored = PendingLabels.from_state(json.loads(json.dumps(first.state_dict())))
    assert restored.state_dict() == json.loads(json.dumps(first.state_dict()))
    after = run(restored, events[30:])  # at-least-once: five events come again
    assert sorted(before + after) == sorted(straight)
    assert len(set(straight)) == len(straight) == 40 - restored.stats()["pending"]
    assert restored.stats()["labelled"] == 14 and restored.stats()["matured"] > 0


def test_a_version_1_checkpoint_restores_with_the_same_pending_payments() -> None:
    """Version 1 held each snapshot as a list; a worker upgraded mid-stream still learns them."""
    old = {
        "model": "PendingLabels", "version": 1, "maturity_seconds": 100.0, "learn_unlabelled_as_legit": True,
        "max_pending": 10, "early": [], "resolved": [["p0", 1.0, "label"]],
        "pending": [["p1", 5.0, [{"amount_z": 4.0}, 0.9, True]], ["p2", 9.0, [{"amount_z": 0.1}, 0.1, False]]],
        "counts": {"labelled": 1, "matured": 0, "dropped": 0, "evicted": 0, "repeated": 0, "late": 0,
                   "unmatched": 0},
    }
    restored = PendingLabels.from_state(old)
    hit = restored.label("p1", True, ts=20.0)
    assert (hit.features, hit.score, hit.alerted, hit.is_fraud) == ({"amount_z": 4.0}, 0.9, True, True)
    [matured] = restored.expire(now=200.0)
    assert (matured.payment_id, matured.features, matured.is_fraud) == ("p2", {"amount_z": 0.1}, False)
    assert restored.label("p0", True, ts=30.0) is None and restored.stats()["repeated"] == 1


def test_changes_written_one_by_one_rebuild_the_same_pending_map() -> None:
    """The pipeline writes only the entries that changed at each checkpoint; restoring them gives the same map."""
    rng = random.Random(3)
    pending = PendingLabels(maturity_seconds=50.0, max_pending=40)
    pending.add("before", {"amount_z": 1.0}, 0.2, False, 0.0)
    pending.journal()  # the first changes() reports what was there already
    table: dict[str, list] = {}
    ts = 0.0
    for step in range(600):
        ts += rng.uniform(0, 1)
        payment_id = f"p{rng.randrange(120)}"
        if rng.random() < 0.6:
            scored(pending, payment_id, ts, amount_z=rng.uniform(-2, 6))
        else:
            pending.label(payment_id, rng.random() < 0.3, ts)
        pending.expire(now=ts)
        if step % 37 == 0:
            for name, value in pending.changes().items():
                if value is None:
                    table.pop(name, None)
                else:
                    table[name] = value
            wire = json.loads(json.dumps([pending.core_dict(), sorted(table.items())]))
            restored = PendingLabels.from_parts(wire[0], wire[1])
            assert _same(restored, pending)
            assert restored.changes() == {}
    assert pending.stats()["evicted"] > 0 and pending.stats()["matured"] > 0 and pending.stats()["labelled"] > 0


def _same(a: PendingLabels, b: PendingLabels) -> bool:
    """Same entries (order aside), counts and settings."""
    sa, sb = a.state_dict(), b.state_dict()
    return all(sorted(map(tuple, sa.pop(part))) == sorted(map(tuple, sb.pop(part)))
               for part in ("pending", "early", "resolved")) and sa == sb


def test_changes_that_were_not_written_are_reported_again_as_they_are_by_then() -> None:
    """A checkpoint that failed after taking the changes: puts and removals go out with the next one."""
    pending = PendingLabels(maturity_seconds=100.0)
    pending.journal()
    scored(pending, "p1", ts=0.0)
    scored(pending, "p2", ts=1.0)
    assert sorted(pending.changes()) == ["p/p1", "p/p2"]  # taken, then the write failed
    pending.resend()
    pending.label("p1", True, ts=5.0)  # p1 is resolved meanwhile

    again = pending.changes()

    assert again["p/p1"] is None and again["r/p1"] == [0.0, ["label", None]]  # its removal is not lost
    assert again["p/p2"][0] == 1.0
