"""Sales windows: event time, lateness, empty windows, order independence, top SKUs, checkpoints."""

from __future__ import annotations

import json
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from models.forecasting import SalesWindows, TopSkus

MINUTE = 60.0


def order(ts: float, sku: str = "A", quantity: int = 1, price: float = 2.5, category: str = "toys") -> dict:
    return {"ts": ts, "lines": [{"sku": sku, "quantity": quantity, "unit_price": price, "category": category}]}


def closed_as_tuples(windows: list) -> list[tuple]:
    return [(w.series, w.start, w.units, w.revenue) for w in windows]


def test_a_window_closes_once_the_watermark_passes_its_end_plus_lateness() -> None:
    windows = SalesWindows(size=MINUTE, allowed_lateness=20.0)
    windows.add_order(order(10.0, quantity=2))
    windows.add_order(order(70.0))

    assert windows.advance() == []  # watermark 70 < 60 + 20
    windows.add_order(order(55.0, quantity=3))  # late but within the allowed lateness
    closed = windows.advance(80.0)

    # SKU A entered the top at ts 10, so its series starts with the next (complete) window.
    assert closed_as_tuples(closed) == [("category:toys", 0.0, 5.0, 12.5), ("total:all", 0.0, 5.0, 12.5)]
    assert windows.late == 0
    assert [w.series for w in windows.advance(140.0)] == ["category:toys", "sku:A", "total:all"]


def test_an_order_counts_once_in_orders_and_once_per_line_in_lines() -> None:
    windows = SalesWindows(size=MINUTE)
    two_toys = {"ts": 5.0, "lines": [
        {"sku": "A", "quantity": 2, "unit_price": 1.0, "category": "toys"},
        {"sku": "B", "quantity": 1, "unit_price": 1.0, "category": "toys"},
    ]}
    windows.add_order(two_toys)
    windows.add_order(order(7.0, sku="C", category="books"))

    closed = {w.series: (w.units, w.lines, w.orders) for w in windows.advance(MINUTE)}

    assert closed == {"total:all": (4.0, 3, 2), "category:toys": (3.0, 2, 1), "category:books": (1.0, 1, 1)}


def test_open_windows_show_their_sales_so_far_and_which_series_just_sold() -> None:
    windows = SalesWindows(size=MINUTE, allowed_lateness=30.0)
    windows.add_order(order(50.0, quantity=2))
    windows.add_order(order(70.0, sku="B", category="books"))
    windows.advance()  # watermark 70: [0, 60) is still open for late events, [60, 120) is filling

    assert windows.take_fresh() == ["category:books", "category:toys", "total:all"]
    assert windows.take_fresh() == []
    so_far = [(w.start, w.units, w.orders) for w in windows.open_sales("total:all")]
    assert so_far == [(0.0, 2.0, 1), (60.0, 1.0, 1)]
    assert [(w.start, w.units) for w in windows.open_sales("category:toys")] == [(0.0, 2.0), (60.0, 0.0)]

    windows.add_order(order(95.0))
    windows.advance()
    assert windows.take_fresh() == ["category:toys", "sku:A", "total:all"]
    assert [w.start for w in windows.open_sales("total:all")] == [60.0]  # [0, 60) closed at watermark 95


def test_quiet_windows_close_with_zero_sales_for_every_known_series() -> None:
    windows = SalesWindows(size=MINUTE)
    windows.add_order(order(5.0, category="toys"))
    windows.add_order(order(6.0, sku="B", category="books"))

    closed = windows.advance(4 * MINUTE)  # nothing sold in minutes 1-3

    toys = [(w.start, w.units) for w in closed if w.series == "category:toys"]
    books = [(w.start, w.units) for w in closed if w.series == "category:books"]
    assert toys == [(0.0, 1.0), (60.0, 0.0), (120.0, 0.0), (180.0, 0.0)]
    assert books == [(0.0, 1.0), (60.0, 0.0), (120.0, 0.0), (180.0, 0.0)]
    assert [w.start for w in closed] == sorted(w.start for w in closed)


def test_a_late_event_is_counted_and_reported_as_a_correction_not_put_in_a_window() -> None:
    windows = SalesWindows(size=MINUTE, allowed_lateness=10.0)
    windows.add_order(order(30.0, quantity=2))
    first = windows.advance(75.0)

    corrections = windows.add_order(order(59.0, quantity=4, price=1.0))

    assert windows.late == 1
    assert {(c.series, c.start, c.units, c.revenue) for c in corrections} == {
        ("total:all", 0.0, 4.0, 4.0),
        ("category:toys", 0.0, 4.0, 4.0),
    }
    assert [w for w in first if w.series == "total:all"][0].units == 2.0
    again = windows.advance(200.0)
    assert all(w.start >= 60.0 for w in again)  # the closed window is never emitted twice


@settings(max_examples=25, deadline=None)
@given(
    delays=st.lists(st.floats(min_value=0.0, max_value=90.0), min_size=60, max_size=60),
    seed=st.integers(min_value=0, max_value=1000),
)
def test_any_arrival_order_within_the_lateness_gives_the_same_closed_windows(delays: list[float], seed: int) -> None:
    rng = random.Random(seed)
    events = [
        order(ts=i * 17.0 + rng.random(), sku="A", quantity=rng.randint(1, 5), price=rng.choice([0.1, 0.2, 9.99]),
              category=rng.choice(["toys", "books", "garden"]))
        for i in range(60)
    ]

    def run(arrivals: list[dict]) -> list[tuple]:
        windows = SalesWindows(size=MINUTE, allowed_lateness=90.0)
        closed = []
        for event in arrivals:
            assert windows.add_order(event) == []
            closed += windows.advance()
        closed += windows.advance(10_000.0)
        assert windows.late == 0
        return sorted(t for t in closed_as_tuples(closed) if not t[0].startswith("sku:"))

    shuffled = [e for _, e in sorted(zip((e["ts"] + d for e, d in zip(events, delays)), events), key=lambda p: p[0])]
    assert run(shuffled) == run(events)


def test_open_windows_stay_bounded_by_the_lateness() -> None:
    windows = SalesWindows(size=MINUTE, allowed_lateness=150.0)
    for i in range(2000):
        windows.add_order(order(i * 7.0, sku=f"S{i % 300}", category=f"c{i % 5}"))
        windows.advance()
        assert windows.open_windows <= len(windows.series) * (150.0 / MINUTE + 2)
    assert len([s for s in windows.series if s.startswith("sku:")]) <= 50


def test_the_best_sellers_get_a_series_and_tail_skus_do_not() -> None:
    windows = SalesWindows(size=MINUTE, top_skus=3)
    rng = random.Random(1)
    for i in range(3000):
        sku = rng.choice(["HIT1", "HIT2", "HIT3"]) if rng.random() < 0.6 else f"TAIL{rng.randrange(500)}"
        windows.add_order(order(i * 2.0, sku=sku))
        windows.advance()

    assert [s for s in windows.series if s.startswith("sku:")] == ["sku:HIT1", "sku:HIT2", "sku:HIT3"]


def test_top_skus_keep_bounded_counters_and_report_who_left() -> None:
    top = TopSkus(top=2, capacity=3)
    assert top.add("A", 10) == [] and top.add("B", 1) == []
    assert top.add("C", 2) == ["B"]  # C passes B, the weakest of the top two
    assert top.add("D", 1) == []  # the summary is full: D takes over B's counter (1 + 1)
    assert sorted(top) == ["A", "C"]
    assert top.count("D") == 2 and top.count("B") == 0
    restored = TopSkus.from_state(json.loads(json.dumps(top.state_dict())))
    assert restored.state_dict() == top.state_dict()


def test_a_checkpoint_mid_stream_continues_exactly_like_the_uninterrupted_run() -> None:
    rng = random.Random(5)
    events = [order(i * 11.0, sku=f"S{rng.randrange(40)}", quantity=rng.randint(1, 3),
                    category=rng.choice(["a", "b"])) for i in range(400)]

    def feed(windows: SalesWindows, part: list[dict]) -> list[tuple]:
        closed = []
        for event in part:
            windows.add_order(event)
            closed += closed_as_tuples(windows.advance())
        return closed

    straight = SalesWindows(size=MINUTE, allowed_lateness=30.0, top_skus=5)
    expected = feed(straight, events)

    first = SalesWindows(size=MINUTE, allowed_lateness=30.0, top_skus=5)
    got = feed(first, events[:200])
    state = json.loads(json.dumps(first.state_dict()))
    restored = SalesWindows.from_state(state)
    assert restored.state_dict() == state
    got += feed(restored, events[200:])

    assert got == expected
    assert restored.state_dict() == json.loads(json.dumps(straight.state_dict()))


def test_views_count_in_the_total_their_category_and_a_top_sku_without_ranking_skus_and_late_ones_are_dropped() -> None:
    windows = SalesWindows(size=MINUTE, top_skus=1)
    windows.add_order(order(1.0, sku="A"))
    windows.advance(MINUTE)  # A enters the top with the window after its first sale
    windows.take_fresh()
    for ts, sku in ((61.0, "A"), (62.0, "A"), (63.0, "B"), (64.0, "B"), (65.0, "B")):
        windows.add_view({"ts": ts, "sku": sku, "category": "toys"})
    windows.add_view({"ts": 66.0, "sku": "C"})  # no category
    windows.add_view({"ts": 9_000.0, "sku": "A", "category": "toys"})  # a device clock far ahead

    assert windows.take_fresh() == []  # views alone do not call for a look at the open windows
    assert windows.advance() == []  # nor move the event time: the far-ahead view closes nothing
    closed = {w.series: (w.views, w.orders) for w in windows.advance(2 * MINUTE)}
    assert closed == {"total:all": (6, 0), "category:toys": (5, 0), "sku:A": (2, 0),
                      "category:uncategorized": (1, 0)}
    assert "sku:B" not in windows.series  # three views of B, no sale: views do not rank SKUs

    windows.add_view({"ts": 70.0, "sku": "A", "category": "toys"})  # its window has closed
    assert windows.late_views == 1 and windows.late == 0
    state = json.loads(json.dumps(windows.state_dict()))
    assert SalesWindows.from_state(state).state_dict() == state


@settings(max_examples=50, deadline=None)
@given(gap=st.integers(min_value=1, max_value=10**8), max_quiet=st.integers(min_value=0, max_value=20))
def test_one_advance_closes_at_most_max_quiet_windows_of_a_silence_however_long(gap: int, max_quiet: int) -> None:
    windows = SalesWindows(size=MINUTE, max_quiet=max_quiet)
    windows.add_order(order(5.0))
    windows.add_order(order(gap * MINUTE + 5.0, quantity=2))  # up to 190 years later

    closed = windows.advance((gap + 1) * MINUTE)

    total = [(w.start / MINUTE, w.units) for w in closed if w.series == "total:all"]
    quiet = min(gap - 1, max_quiet)
    assert total == [(0, 1.0)] + [(k, 0.0) for k in range(1, quiet + 1)] + [(gap, 2.0)]
    assert len(closed) <= len(windows.series) * (max_quiet + 2) and windows.open_windows == 0
    windows.add_order(order((gap + 1) * MINUTE + 5.0))  # and the windows after it close as usual
    assert [(w.start / MINUTE, w.units) for w in windows.advance((gap + 2) * MINUTE)
            if w.series == "total:all"] == [(gap + 1, 1.0)]


def test_advanced_once_per_window_a_long_silence_closes_every_window_and_max_quiet_survives_a_checkpoint() -> None:
    windows = SalesWindows(size=MINUTE, max_quiet=2)
    windows.add_order(order(5.0))
    closed = []
    for minute in range(1, 11):  # a clock moves the watermark through ten quiet minutes
        closed += windows.advance(minute * MINUTE)

    assert [w.start / MINUTE for w in closed if w.series == "total:all"] == list(range(10))
    state = json.loads(json.dumps(windows.state_dict()))
    assert SalesWindows.from_state(state).max_quiet == 2
    assert SalesWindows.from_state({k: v for k, v in state.items() if k != "max_quiet"}).max_quiet == 7 * 24


def test_how_many_windows_one_advance_closes_does_not_change_any_series() -> None:
    """A backfill closes many windows per advance, a live stream one: the same windows, SKU series included."""
    import random

    def closed(every: float) -> list:
        rng = random.Random(3)
        windows = SalesWindows(size=60.0, top_skus=3)  # 13 SKUs for 3 places: SKUs enter and leave the top
        orders = sorted(({"ts": rng.uniform(0, 6000), "lines": [
            {"sku": f"S{rng.randint(0, 12)}", "quantity": rng.randint(1, 5), "unit_price": 2.0}]}
            for _ in range(800)), key=lambda o: o["ts"])
        found, last = [], 0.0
        for o in orders:
            windows.add_order(o)
            if o["ts"] - last >= every:
                found += windows.advance(o["ts"])
                last = o["ts"]
        found += windows.advance(7000.0)
        return sorted((w.series, w.start, w.units, w.orders) for w in found)

    assert closed(0.0) == closed(600.0) == closed(3000.0)
    assert any(series.startswith("sku:") for series, *_ in closed(0.0))
