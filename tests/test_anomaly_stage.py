"""The anomaly stage's state: minutes close by event time, the same alerts whatever the arrival."""

from __future__ import annotations

import json
import random
from itertools import chain, zip_longest

from streams.pipeline.packing import PackedBatch
from streams.pipeline.snapshots import pack_state, unpack_state
from streams.pipeline.stages.anomaly import AnomalyState, publish_anomalies
from streams.pipeline.views import RedisViews
from streams.settings import KairosSettings
from streams.tools.evaluation.anomaly import score_alerts

MINUTE = 60.0
START = 1_795_305_600.0  # 2026-11-22T00:00:00Z
BREAK = 70  # the checkout breaks at minute 70 for 8 minutes
SETTINGS = KairosSettings(anomaly_warmup_minutes=30)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def shop(minutes: int = 80) -> dict[str, list[tuple[int, dict | None]]]:
    """Traffic records of two upstream paths (offset order), with a checkout break and a burst of dead letters."""
    rng = random.Random(5)
    paths: dict[str, list] = {"clicks:0>0": [], "orders:0>1": []}
    for minute in range(minutes):
        t = START + minute * MINUTE
        for second in sorted(rng.uniform(0, 60) for _ in range(60)):
            paths["clicks:0>0"].append({"ts": t + second, "kind": "cart" if rng.random() < 0.25 else "view",
                                        "category": rng.choice(["toys", "books"])})
        if minute == 40:
            paths["clicks:0>0"] += [None] * 30  # a producer sends 30 broken clicks
        if not BREAK <= minute < BREAK + 8:
            for second in sorted(rng.uniform(0, 60) for _ in range(6)):
                paths["orders:0>1"].append({"ts": t + second, "kind": "order", "country": "DE"})
        if minute >= 50:  # payments from a second country, some declined: scopes first seen mid-stream
            paths["orders:0>1"].append({"ts": t + 59.5, "kind": "payment", "method": "card", "country": "ES",
                                        "status": "declined" if rng.random() < 0.2 else "captured"})
    return {path: list(enumerate(records)) for path, records in paths.items()}


def new_state(clock: Clock, idle_seconds: float = 5.0, grace: bool = False) -> AnomalyState:
    """A new state; unless in its ``grace`` (paths not yet heard hold it), ``idle_seconds`` old."""
    fresh = AnomalyState.new(SETTINGS)
    state = AnomalyState(fresh.monitor, idle_seconds=idle_seconds, clock=clock)
    if not grace:
        clock.now += idle_seconds
    return state


def run(batches: list[tuple[str, list]], restore_at: int | None = None) -> tuple[list, dict]:
    """Feed ``batches`` (path, entries) from a start (both paths are heard in the grace, as a worker's start hears
    every live path), a batch every 10 ms; at ``restore_at``, checkpoint, redeliver the last batch and go on from
    the snapshot. Returns the alerts (id, reasons) and every scope's final view."""
    clock = Clock()
    state = new_state(clock, idle_seconds=0.5, grace=True)
    alerts, views = [], {}
    for index, (path, entries) in enumerate(batches):
        clock.now += 0.01
        if index == restore_at:
            state = AnomalyState.from_state(unpack_state(pack_state(state.state_dict())), 0.5, clock)
            update = state.apply(PackedBatch("traffic", *batches[index - 1]))  # redelivered after the crash
            alerts += [(a.scope, a.minute, tuple(a.reasons())) for a in update.alerts]
        update = state.apply(PackedBatch("traffic", path, entries))
        alerts += [(a.scope, a.minute, tuple(a.reasons())) for a in update.alerts]
        views.update(update.views)
    clock.now += 1.0  # every path falls idle: the last minutes close, in as many ticks as it takes (as the timer)
    while True:
        update = state.tick()
        alerts += [(a.scope, a.minute, tuple(a.reasons())) for a in update.alerts]
        views.update(update.views)
        if not update.pending:
            break
    assert state.monitor.counts["late"] == 0
    return alerts, views


def chunks(entries: list, size: int) -> list[list]:
    return [entries[i:i + size] for i in range(0, len(entries), size)]


def interleave(clicks: list, click_size: int, orders: list, order_size: int) -> list[tuple[str, list]]:
    """Both paths' first entries, then batches of each in turn."""
    pairs = zip_longest(chunks(clicks[1:], click_size), chunks(orders[1:], order_size), fillvalue=None)
    return [("clicks:0>0", clicks[:1]), ("orders:0>1", orders[:1]), *(
        (path, part) for a, b in pairs for path, part in (("clicks:0>0", a), ("orders:0>1", b)) if part)]


def test_a_checkout_break_is_alerted_the_same_whatever_the_arrival_order() -> None:
    paths = shop()
    clicks, orders = paths["clicks:0>0"], paths["orders:0>1"]
    # Clicks held back: once both paths were heard, the orders run the whole stream ahead.
    held_back = [("clicks:0>0", clicks[:10]), *(("orders:0>1", part) for part in chunks(orders, 100)),
                 *(("clicks:0>0", part) for part in chunks(clicks[10:], 500))]
    small = interleave(clicks, 37, orders, 4)
    results = [run(held_back), run(interleave(clicks, 400, orders, 30)), run(small),
               run(small, restore_at=len(small) // 2)]
    assert len(list(chain(*(part for _, part in held_back)))) == len(clicks) + len(orders)

    alerts, view = results[0]
    broken = [a for a in alerts if a[0] == "all:all" and BREAK * MINUTE <= a[1] - START]
    assert broken and any("conversion_rate" in reason for reason in broken[0][2])
    assert broken[0][1] - START <= (BREAK + 4) * MINUTE  # within 5 minutes of event time
    dead = [a for a in alerts if any("dead_letter_rate" in r for r in a[2])]
    assert [a[1] - START for a in dead] == [40 * MINUTE]  # dated at their path's event time
    # Every scope's final view, learned usual values included, is the same: a scope first seen mid-stream (the
    # second country) has learned from the same minutes whether the watermark had passed them when its first
    # record came (interleaved) or not (the orders run ahead).
    assert set(view) == {"all:all", "category:toys", "category:books", "country:DE", "country:ES", "method:card"}
    for other_alerts, other_view in results[1:]:
        assert other_alerts == alerts
        assert other_view == view


def test_a_path_heard_first_with_later_events_does_not_make_an_older_path_late() -> None:
    # At a start, the path heard first may be hours ahead of another (a backfill's orders read before its clicks):
    # no watermark has passed the older minutes, so they count and close from the oldest, as in the other order.
    orders = [(i, {"ts": START + 3600 + i * 20.0, "kind": "order", "country": "DE"}) for i in range(200)]
    clicks = [(i, {"ts": START + i * 20.0, "kind": "view", "category": "toys"}) for i in range(400)]
    results = []
    for first, second in ((("orders:0>1", orders), ("clicks:0>0", clicks)),
                          (("clicks:0>0", clicks), ("orders:0>1", orders))):
        clock = Clock()
        state = new_state(clock, idle_seconds=0.5, grace=True)
        state.apply(PackedBatch("traffic", *first))
        clock.now += 0.1
        state.apply(PackedBatch("traffic", *second))
        clock.now += 1.0  # both paths idle: everything closes
        while state.tick().pending:
            pass
        monitor = state.monitor
        assert monitor.counts["late"] == 0
        assert monitor.counts["records"] == 600
        results.append((monitor.counts["minutes_closed"], monitor.latest))
    assert results[0] == results[1]
    assert results[0][0] == 132  # minutes 0 to 131 (the last, 133, and 132 are within the allowed lateness)


def test_redelivered_entries_are_not_counted_twice_and_late_ones_are_counted_as_late() -> None:
    clock = Clock()
    state = new_state(clock)
    entries = [(i, {"ts": START + i, "kind": "view"}) for i in range(120)]
    state.apply(PackedBatch("traffic", "clicks:0>0", entries))
    state.apply(PackedBatch("traffic", "clicks:0>0", entries[:60]))  # a redelivery
    state.apply(PackedBatch("traffic", "clicks:0>0", [(120, {"ts": START + 200, "kind": "view"})]))
    assert state.monitor.counts["records"] == 121
    state.apply(PackedBatch("traffic", "clicks:0>0", [(121, {"ts": START + 1, "kind": "view"})]))
    assert state.monitor.counts["late"] == 1  # minute 0 had closed (the watermark passed 90 s)
    assert state.dead_undated == 0
    state.apply(PackedBatch("traffic", "orders:2>0", [(0, None)]))  # a dead letter before any event of its path
    assert state.dead_undated == 1


def test_views_and_alerts_are_written_once_per_scope_and_survive_json() -> None:
    alerts, _ = run([("clicks:0>0", part) for part in chunks(shop(90)["clicks:0>0"], 1000)])

    class Pipe:
        def __init__(self) -> None:
            self.commands: list[tuple] = []

        def hset(self, key: str, mapping: dict) -> None:
            self.commands.append(("hset", key, json.dumps(mapping)))

        def zadd(self, key: str, mapping: dict) -> None:
            self.commands.append(("zadd", key, json.dumps(mapping)))

        def eval(self, *args: object) -> None:
            self.commands.append(("eval",))

    clock = Clock()
    state = new_state(clock)
    updates = [state.apply(PackedBatch("traffic", "clicks:0>0", part)) for part in chunks(shop(5)["clicks:0>0"], 50)]
    clock.now += 10.0
    updates.append(state.tick())
    pipe = Pipe()
    publish_anomalies(pipe, RedisViews(SETTINGS), updates)
    keys = [command[1] for command in pipe.commands if command[0] == "hset"]
    assert len(keys) == len(set(keys)) and "kairos:anomaly:all:all" in keys and "kairos:anomaly:category:toys" in keys


def test_an_incident_counts_as_caught_only_within_five_minutes_of_its_start() -> None:
    incident = {"kind": "checkout_break", "start_ts": START + 30, "end_ts": START + 1800}
    on_time = score_alerts([("all:all", START + 240, [])], [incident], 300)
    late = score_alerts([("all:all", START + 300, [])], [incident], 300)
    other = score_alerts([("all:all", START + 1800 + 16 * MINUTE, [])], [incident], 300)
    assert (on_time["caught"], on_time["delays"]) == (1, [270.0])
    assert late["caught"] == 0 and not late["others"]
    assert other["caught"] == 0 and len(other["others"]) == 1


def test_a_long_silence_is_skipped_the_same_whatever_the_steps_of_the_watermark() -> None:
    from models.anomaly import TrafficMonitor

    def monitor_after(steps: list[float]) -> dict:
        monitor = TrafficMonitor(scopes=("all",), detector={"warmup": 5})
        for minute in [*range(20), *range(10_000, 10_020)]:
            monitor.add({"ts": START + minute * MINUTE, "kind": "view"})
        for mark in steps:
            monitor.advance(START + mark * MINUTE)
        return monitor.state_dict()

    at_once = monitor_after([10_030.0])
    stepped = monitor_after([*range(0, 10_031, 7), 10_030.0])
    assert at_once == stepped
    assert at_once["counts"]["minutes_skipped"] == 10_000 - 20 - 60
    assert at_once["counts"]["minutes_closed"] == 20 + 60 + 29


def test_a_version_1_detector_checkpoint_loads_and_scores_gateway_failures_apart_from_declines() -> None:
    from models.anomaly import TrafficAnomalyDetector

    detector = TrafficAnomalyDetector(warmup=5)
    for minute in range(40):  # version 1 counted the one failure of every 40 payments as a decline
        detector.learn_one({"payments": 8, "declined": 0 if minute % 5 else 1, "failed": 0})
    old = json.loads(json.dumps(detector.state_dict()))
    old["version"] = 1
    for means in (old["usual"], old["slow"]):
        means["declined"] += means.pop("failed")
    old["dispersion"] = {key: value for key, value in old["dispersion"].items() if not key.startswith("failure")}
    loaded = TrafficAnomalyDetector.from_state(old)
    assert loaded.state_dict()["version"] == TrafficAnomalyDetector.VERSION
    usual = loaded.usual()  # the lumped rate, split 4:1
    assert round(usual["decline_rate"] / 4, 9) == round(usual["failure_rate"], 9) > 0
    assert round(usual["decline_rate"] + usual["failure_rate"], 9) == round(detector.usual()["decline_rate"], 9)
    failing = {"payments": 8, "declined": 0, "failed": 4}  # a gateway failing half the payments
    assert [move.signal for move in loaded.explain_one(failing)] == ["failure_rate"]


def test_minutes_scored_in_budgeted_slices_give_what_one_advance_gives_late_records_included() -> None:
    """A replay's jump makes thousands of minutes due at once; the stage scores them ``MINUTES_PER_TICK`` at a
    time. Cut anywhere, the alerts, the views, the late records and the state are those of one advance."""
    from models.anomaly import TrafficMonitor

    def record(minute: float, rng: random.Random, kind: str | None = None) -> dict:
        return {"ts": START + minute * MINUTE + rng.uniform(0, 59), "kind": kind or rng.choice(["view", "cart"]),
                "category": rng.choice(["toys", "books"])}

    def monitor_after(budget: int | None) -> tuple[list, dict, dict]:
        rng = random.Random(3)
        monitor = TrafficMonitor(scopes=("all", "category"), detector={"warmup": 20})
        for minute in range(200):
            burst = 8 if 100 <= minute < 106 else 1  # a bot burst of views
            for _ in range(rng.randrange(20, 30) * burst):
                monitor.add(record(minute, rng))
            if not 150 <= minute < 158:  # then a checkout break
                for _ in range(rng.randrange(2, 5)):
                    monitor.add(record(minute, rng, "order"))
        alerts: list = []
        views: dict = {}

        def drain(mark: float) -> None:
            while True:
                update = monitor.advance(START + mark * MINUTE, budget=budget)
                alerts.extend((a.scope, a.minute, tuple(a.reasons())) for a in update.alerts)
                views.update(update.views)
                if not update.pending:
                    return

        update = monitor.advance(START + 180 * MINUTE, budget=budget)  # one call: sliced, minutes stay due
        alerts.extend((a.scope, a.minute, tuple(a.reasons())) for a in update.alerts)
        views.update(update.views)
        monitor.add(record(120, rng))  # passed by the watermark: late, whether its minute is closed yet or not
        monitor.add(record(190, rng))  # not passed: counted
        drain(180)
        drain(400)
        return alerts, views, monitor.state_dict()

    whole, sliced = monitor_after(None), monitor_after(7)
    assert sliced == whole
    alerts, _, state = whole
    assert state["counts"]["late"] == 1 and state["counts"]["minutes_closed"] == 200 + 60
    assert {scope for scope, _, _ in alerts} >= {"all:all"} and len(alerts) >= 2
