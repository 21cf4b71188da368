"""The sessions stage's state: sessions scored and learned in event-time order, whatever the arrival."""

from __future__ import annotations

import json
import random

from models.propensity import ConversionClassifier, SessionTracker
from streams.pipeline.packing import PackedBatch
from streams.pipeline.snapshots import pack_state, unpack_state
from streams.pipeline.stages import sessions as sessions_stage
from streams.pipeline.stages.sessions import SessionState, session_record
from streams.settings import KairosSettings

START = 1_795_305_600.0  # 2026-11-22T00:00:00Z
SETTINGS = KairosSettings(propensity_grace_period=40, propensity_warmup_sessions=50, abandon_cart_value=50.0,
                          session_timeout_seconds=900.0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def shop(sessions: int = 700, seed: int = 3, sent: bool = False) -> dict[str, list[tuple[int, dict]]]:
    """Session records of two upstream paths (clicks, orders; offset order): carts and returning customers convert;
    ``sent``: as the customers stage sends them (lists of field values)."""
    rng = random.Random(seed)
    make = sessions_stage.session_values if sent else session_record
    clicks, orders = [], []
    for index in range(sessions):
        customer, t = f"c{rng.randrange(200)}", START + index * 20.0 + rng.uniform(0, 15)
        carts, returning = rng.random() < 0.5, rng.random() < 0.4
        for step in range(rng.randint(1, 6)):
            t += rng.uniform(5, 60)
            clicks.append(make("clicks", {"ts": t, "session_id": f"s{index}", "customer_id": customer,
                                                    "action": "view", "price": 20.0}, int(returning)))
        if carts:
            t += rng.uniform(5, 30)
            clicks.append(make("clicks", {"ts": t, "session_id": f"s{index}", "customer_id": customer,
                                                    "action": "add_to_cart", "price": rng.choice([30.0, 80.0])},
                                         int(returning)))
        wanders = carts and rng.random() < 0.3  # carts, then browses on and on: rarely buys
        for step in range(rng.randint(6, 12) if wanders else 0):
            t += rng.uniform(5, 60)
            clicks.append(make("clicks", {"ts": t, "session_id": f"s{index}", "customer_id": customer,
                                                    "action": "view", "price": 20.0}, int(returning)))
        if rng.random() < (0.05 if wanders else 0.8 if carts else 0.05) + (0.15 if returning else 0.0):
            orders.append(make("orders", {"ts": t + rng.uniform(20, 120), "customer_id": customer}))
    by_time = lambda records: sorted(records, key=event_time)  # noqa: E731
    return {"clicks:0>0": list(enumerate(by_time(clicks))), "orders:0>1": list(enumerate(by_time(orders)))}


def event_time(record: dict | list) -> float:
    return record["ts"] if isinstance(record, dict) else record[0]


def interleaved(paths: dict[str, list], size: int) -> list[tuple[str, list]]:
    """Chunks of ``size`` records taken from the paths in event-time order (a live stream)."""
    merged = sorted(((event_time(entry[1]), path, entry) for path, entries in paths.items() for entry in entries),
                    key=lambda item: item[:2])
    batches: list[tuple[str, list]] = []
    for _, path, entry in merged:
        if batches and batches[-1][0] == path and len(batches[-1][1]) < size:
            batches[-1][1].append(entry)
        else:
            batches.append((path, [entry]))
    return batches


def run(batches: list[tuple[str, list]], restore_at: int | None = None,
        idle: float = 0.5) -> tuple[str, list, dict, list]:
    """Feed ``batches`` a 10 ms apart (every path heard in the start's grace; a path silent for ``idle`` seconds
    no longer holds the others), restoring from a checkpoint at ``restore_at`` (the last batch redelivered);
    returns the model, the ended sessions, the views and the alerts."""
    clock = Clock()
    fresh = SessionState.new(SETTINGS)
    state = SessionState(fresh.tracker, idle_seconds=idle, clock=clock)
    ended, views, alerts = [], {}, []

    def take(update) -> None:
        ended.extend(update.ended)
        views.update(update.sessions)
        alerts.extend(alert.session_id for alert in update.alerts)
        while update.pending:  # what the stage's timer does: more calls until the work due is done
            update = state.tick()
            ended.extend(update.ended)
            views.update(update.sessions)
            alerts.extend(alert.session_id for alert in update.alerts)

    for index, (path, entries) in enumerate(batches):
        clock.now += 0.01
        if index == restore_at:
            state = SessionState.from_state(unpack_state(pack_state(state.state_dict())), clock=clock)
            state.paths.idle_seconds = idle
            take(state.apply(PackedBatch("sessions", *batches[index - 1])))
        take(state.apply(PackedBatch("sessions", path, entries)))
    clock.now += idle + 0.5  # every path falls idle: everything waiting is applied
    take(state.tick())
    state.tracker.advance(START + 10 * 86_400.0)  # far on: every session has ended
    take(state.tracker.flush())
    model = json.dumps(state.tracker.model.state_dict(), sort_keys=True)
    return model, ended, views, alerts


def test_records_sent_as_field_lists_give_what_the_records_give_and_a_checkpoint_of_records_restores() -> None:
    """The customers stage sends each record as its field values (``session_values``, a third of the bytes); the
    stage gives the same as from the records, and a checkpoint written before (records waiting as dicts)
    restores and goes on with the lists."""
    as_records, as_sent = interleaved(shop(), 4), interleaved(shop(sent=True), 4)
    assert [path for path, _ in as_records] == [path for path, _ in as_sent]
    assert isinstance(as_sent[0][1][0][1], list) and isinstance(as_records[0][1][0][1], dict)
    live = run(as_records)
    assert run(as_sent) == live
    assert run(as_records[:300] + as_sent[300:], restore_at=300) == live


def test_the_same_sessions_scores_and_model_whatever_the_arrival() -> None:
    paths = shop()
    live = run(interleaved(paths, 4))
    model, ended, views, alerts = live
    assert len(ended) >= 700 and sum(converted for converted, _ in ended) > 150
    assert alerts, "the test shop must raise abandon alerts for the comparison to mean something"
    # Bigger batches, and a restore from a checkpoint mid-stream with the last batch redelivered.
    assert run(interleaved(paths, 50)) == live
    assert run(interleaved(paths, 7), restore_at=300) == live
    # Topic by topic: the clicks run hours ahead of the orders (each path heard from at the start, and the
    # orders path talking within the idle time); the stage holds the clicks back until the orders catch up.
    clicks, orders = paths["clicks:0>0"], paths["orders:0>1"]
    backfill = [("clicks:0>0", clicks[:1]), ("orders:0>1", orders[:1])]
    backfill += [("clicks:0>0", clicks[i:i + 40]) for i in range(1, len(clicks), 40)]
    backfill += [("orders:0>1", orders[i:i + 5]) for i in range(1, len(orders), 5)]
    assert run(backfill, idle=5.0) == live


def test_work_in_small_slices_gives_what_one_call_gives_after_a_jump(monkeypatch) -> None:
    """After a backfill the watermark jumps: the records waiting, the sessions timing out and those learned are
    worked through a few at a time, with a checkpoint in the middle, and give what unbounded calls give."""
    paths = shop()
    clicks, orders = paths["clicks:0>0"], paths["orders:0>1"]
    backfill = [("clicks:0>0", clicks[:1]), ("orders:0>1", orders[:1])]
    backfill += [("clicks:0>0", clicks[i:i + 40]) for i in range(1, len(clicks), 40)]
    backfill += [("orders:0>1", orders[i:i + 5]) for i in range(1, len(orders), 5)]
    monkeypatch.setattr(sessions_stage, "WORK_PER_TICK", 10**9)
    whole = run(backfill, idle=5.0)
    monkeypatch.setattr(sessions_stage, "WORK_PER_TICK", 7)
    assert run(backfill, idle=5.0) == whole
    assert run(backfill, idle=5.0, restore_at=len(backfill) - 3) == whole
    tracker = SessionTracker(ConversionClassifier(grace_period=10), timeout=600.0, warmup=0)
    for index in range(30):
        tracker.add({"ts": START + index * 60.0, "kind": "click", "session_id": f"s{index}", "customer_id": "c",
                     "action": "view", "price": 20.0})
    steps = 0
    while (tracker.advance(START + 86_400.0, budget=3) or tracker.closing) and steps < 1000:
        steps += 1
    assert tracker.model.learned == 30 and not tracker.closing and steps > 10


def test_the_live_score_ranks_converting_sessions_first() -> None:
    _, ended, _, _ = run(interleaved(shop(), 20))
    later = ended[200:]  # once the tree has grown
    positives = [score for converted, score in later if converted]
    negatives = [score for converted, score in later if not converted]
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    assert wins / (len(positives) * len(negatives)) > 0.75


def test_open_sessions_are_bounded_and_erased_customers_dropped() -> None:
    tracker = SessionTracker(ConversionClassifier(grace_period=10), max_open=50, warmup=0)
    for index in range(120):
        tracker.add(session_record("clicks", {"ts": START + index, "session_id": f"s{index}",
                                              "customer_id": f"c{index % 60}", "action": "view"}))
    assert len(tracker.open) == 50 and tracker.counts["sessions_dropped"] == 70
    assert tracker.forget_customers({"c15", "c16"}) == 2 and len(tracker.open) == 48
    assert not {"s75", "s76"} & tracker.flush().sessions.keys()  # nothing of theirs is published afterwards
    tracker.add(session_record("orders", {"ts": START + 200, "customer_id": "c15"}))
    assert tracker.counts["orders_without_session"] == 1


def test_a_full_buffer_applies_its_earliest_records_without_waiting_and_counts_them() -> None:
    """Within the start's hold nothing is applied, until more than ``sessions_max_waiting`` records wait: then
    the earliest go (counted); a checkpoint keeps what waits, and the bound comes from the settings."""
    settings = SETTINGS.model_copy(update={"sessions_max_waiting": 5})
    clock = Clock()
    state = SessionState.new(settings)
    state.paths.clock = clock
    records = [(offset, record) for offset, record in shop(sessions=3)["clicks:0>0"]][:8]
    state.apply(PackedBatch("sessions", "clicks:0>0", records[:4]))
    assert (len(state.waiting), state.released_early, state.tracker.counts["sessions_started"]) == (4, 0, 0)
    state.apply(PackedBatch("sessions", "clicks:0>0", records[4:]))
    assert (len(state.waiting), state.released_early) == (5, 3)
    assert sorted(entry[2] for entry in state.waiting) == [offset for offset, _ in records[3:]]
    restored = SessionState.from_state(unpack_state(pack_state(state.state_dict())), settings)
    assert (restored.max_waiting, len(restored.waiting), restored.released_early) == (5, 5, 3)
    assert SessionState.new(SETTINGS).max_waiting == SETTINGS.sessions_max_waiting == 250_000


def test_a_customers_session_pointer_goes_out_with_a_view_of_that_session_never_before() -> None:
    """``propensity:customer:{id}`` names the session whose hash a reader then reads: the pointer must never be
    published in an update that does not also write that session's view (found as a KeyError in test_shop)."""
    tracker = SessionTracker(ConversionClassifier(grace_period=10), timeout=600.0, warmup=0)
    click = {"kind": "click", "customer_id": "c1", "action": "view", "price": 10.0}
    tracker.add(click | {"ts": 10.0, "session_id": "s1"})
    unscored = tracker.flush(score=False)  # a catch-up or a flush within FLUSH_SECONDS: no open view yet
    assert unscored.customers == {} and "s1" not in unscored.sessions
    scored = tracker.flush()
    assert scored.customers == {"c1": "s1"} and scored.sessions["s1"]["status"] == "open"
    # A session that ends before any scoring flush sends its pointer with its final view.
    tracker.add(click | {"ts": 50.0, "customer_id": "c2", "session_id": "s2"})
    assert tracker.flush(score=False).customers == {}
    tracker.add({"ts": 60.0, "kind": "order", "customer_id": "c2"})
    ended = tracker.flush(score=False)
    assert ended.customers == {"c2": "s2"} and ended.sessions["s2"]["status"] == "converted"
    # Every published pointer, over a stream of many sessions, comes with its session's view.
    rng = random.Random(3)
    for i in range(2_000):
        customer = f"r{rng.randrange(40)}"
        tracker.add(click | {"ts": 100.0 + i, "customer_id": customer, "session_id": f"{customer}-{i // 200}"})
        if rng.random() < 0.05:
            tracker.add({"ts": 100.0 + i, "kind": "order", "customer_id": customer})
        if i % 37 == 0:
            update = tracker.flush(score=rng.random() < 0.5)
            assert all(sid in update.sessions for sid in update.customers.values()), update.customers
