"""The sales stage's state: windows close when every active upstream path has passed them."""

from __future__ import annotations

import json
import time
import tracemalloc

from streams.pipeline.packing import PackedBatch
from streams.pipeline.path_clock import fold_packet
from streams.pipeline.stages.sales import SalesState
from streams.settings import KairosSettings

HOUR = 3600.0
#: 2026-11-22T00:00:00Z, 2099-01-01T00:00:00Z and 2001-01-01T00:00:00Z.
NOV_22, YEAR_2099, YEAR_2001 = 1_795_305_600.0, 4_070_908_800.0, 978_307_200.0


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def order(ts: float, sku: str = "A") -> dict:
    return {"ts": ts, "lines": [{"sku": sku, "quantity": 1, "unit_price": 5.0, "category": "toys"}]}


def view(ts: float, sku: str = "A") -> dict:
    return {"ts": ts, "sku": sku, "category": "toys"}


def state(clock: Clock) -> SalesState:
    """A new sales state, five seconds (its grace) ago: windows may close."""
    fresh = SalesState.new(KairosSettings())
    started = SalesState(fresh.monitor, idle_seconds=5.0, clock=clock)
    clock.now += 5.0
    return started


def test_a_path_running_hours_behind_another_loses_nothing_as_late() -> None:
    clock = Clock()
    sales = state(clock)
    # The orders path is already at hour 5 while the clicks path is still in hour 0 (a replay, a catch-up).
    sales.apply(PackedBatch("orders", "orders:0>0", [(0, order(0.5 * HOUR))]))
    sales.apply(PackedBatch("views", "clicks:0>0", [(0, view(0.6 * HOUR))]))
    closed = sales.apply(PackedBatch("orders", "orders:0>0", [(1, order(5 * HOUR))])).closed
    assert closed == 0 and sales.watermark(clock.now) == 0.6 * HOUR
    for offset, at in enumerate([0.7, 1.5, 2.5, 3.5, 4.5, 5.2]):
        clock.now += 0.1
        sales.apply(PackedBatch("views", "clicks:0>0", [(offset + 1, view(at * HOUR))]))

    windows = sales.monitor.windows
    assert windows.late_views == 0 and windows.late == 0
    assert sales.watermark(clock.now) == 5 * HOUR  # the orders path is now the slower one
    total = sales.monitor.view("total:all")["actuals"]
    assert [(w["window_start"] / HOUR, w["lines"], w["views"]) for w in total[:2]] == [(0, 1, 2), (1, 0, 1)]


def test_a_silent_path_stops_holding_the_windows_open() -> None:
    clock = Clock()
    sales = state(clock)
    sales.apply(PackedBatch("views", "clicks:1>0", [(0, view(0.2 * HOUR))]))  # then nothing more on this path
    sales.apply(PackedBatch("orders", "orders:0>0", [(0, order(0.5 * HOUR))]))
    clock.now += 4.0
    assert sales.apply(PackedBatch("orders", "orders:0>0", [(1, order(3 * HOUR))])).closed == 0

    clock.now += 2.0  # the clicks path has been silent for more than five seconds
    update = sales.apply(PackedBatch("orders", "orders:0>0", [(2, order(3.1 * HOUR))]))

    assert update.closed > 0 and sales.monitor.windows.watermark == 3.1 * HOUR
    # It speaks again with current events: counted, and it holds the windows again.
    sales.apply(PackedBatch("views", "clicks:1>0", [(1, view(3.05 * HOUR))]))
    assert sales.monitor.windows.late_views == 0 and sales.watermark(clock.now) == 3.05 * HOUR


def test_paths_survive_a_checkpoint_and_a_version_1_state_restores_without_them() -> None:
    clock = Clock()
    sales = state(clock)
    sales.apply(PackedBatch("orders", "orders:0>0", [(0, order(2 * HOUR))]))
    sales.apply(PackedBatch("views", "clicks:0>0", [(0, view(1 * HOUR))]))
    wire = json.loads(json.dumps(sales.state_dict()))

    restored = SalesState.from_state(wire)
    old = SalesState.from_state({k: v for k, v in wire.items() if k != "paths"} | {"version": 1})

    assert restored.paths.paths == {"orders:0>0": 2 * HOUR, "clicks:0>0": 1 * HOUR}
    assert old.paths.paths == {} and old.watermark(0.0) is None
    assert restored.applied.to_state() == sales.applied.to_state()


def test_a_new_state_holds_its_windows_until_every_live_path_has_spoken_then_closes_them_when_all_fall_silent() -> None:
    clock = Clock()
    sales = SalesState(SalesState.new(KairosSettings()).monitor, idle_seconds=5.0, clock=clock)
    # A restarted worker: the orders path comes first, hours ahead; the clicks path a second later.
    sales.apply(PackedBatch("orders", "orders:0>0", [(0, order(0.5 * HOUR)), (1, order(4 * HOUR))]))
    clock.now = 1.0
    assert sales.apply(PackedBatch("views", "clicks:0>0", [(0, view(0.4 * HOUR))])).closed == 0
    assert sales.monitor.windows.late_views == 0

    clock.now = 5.5  # the grace is over and both paths are still heard: the clicks path holds the windows
    assert sales.tick().closed == 0
    clock.now = 7.0  # the stream stopped: both paths silent, nothing lags, the windows up to the latest close
    update = sales.tick()

    assert update.closed > 0 and sales.monitor.windows.watermark == 4 * HOUR
    total = sales.monitor.view("total:all")["actuals"]
    assert (total[0]["lines"], total[0]["views"]) == (1, 1)


def test_a_click_dated_in_the_future_does_not_close_every_window_when_the_paths_fall_silent() -> None:
    clock = Clock()
    sales = state(clock)
    sales.apply(PackedBatch("orders", "orders:0>0", [(0, order(2.5 * HOUR))]))
    sales.apply(PackedBatch("views", "clicks:0>0", [(0, view(2.6 * HOUR)), (1, view(200 * HOUR))]))  # device clock

    clock.now += 6.0  # the shop falls quiet: every path silent
    sales.tick()

    assert sales.monitor.windows.watermark == 2.5 * HOUR  # the latest order, not the future-dated view
    sales.apply(PackedBatch("orders", "orders:0>0", [(1, order(2.7 * HOUR))]))  # next order: on time
    assert sales.monitor.windows.late == 0


def test_an_order_dated_2099_after_normal_ones_closes_a_week_of_windows_not_73_years_and_the_stream_goes_on() -> None:
    clock = Clock()
    sales = state(clock)
    for hour in range(48):
        sales.apply(PackedBatch("orders", "orders:0>0", [(hour, order(NOV_22 + hour * HOUR))]))

    tracemalloc.start()
    began = time.perf_counter()
    update = sales.apply(PackedBatch("orders", "orders:0>0", [(48, order(YEAR_2099))]))
    elapsed = time.perf_counter() - began
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    # Before: every hourly window up to 2099 closed and learned, per series (640,000 each; 4.9 GB, never done).
    series = sales.monitor.windows.series
    assert series == ["category:toys", "sku:A", "total:all"]
    assert update.closed == len(series) * (2 + 7 * 24)  # per series: the two open windows, then a quiet week
    # The closed count and the memory peak are the guards; the time only catches a hang (tracemalloc slows the
    # work several times over, and the suite runs three at once on two cores: 2.01 s seen for ~0.5 s of work).
    assert peak < 4_000_000 and elapsed < 10.0, (peak, elapsed)
    # The next order is processed: late, as the 2099 order moved the event time (the door keeps such orders out).
    assert sales.apply(PackedBatch("orders", "orders:0>0", [(49, order(NOV_22 + 48 * HOUR))])).closed == 0
    assert sales.monitor.windows.late == 1


def test_an_order_and_a_view_dated_2001_after_normal_ones_are_late_and_close_nothing() -> None:
    clock = Clock()
    sales = state(clock)
    for hour in range(48):
        sales.apply(PackedBatch("orders", "orders:0>0", [(hour, order(NOV_22 + hour * HOUR))]))
    watermark = sales.monitor.windows.watermark

    assert sales.apply(PackedBatch("orders", "orders:0>0", [(48, order(YEAR_2001))])).closed == 0
    assert sales.apply(PackedBatch("views", "clicks:0>0", [(0, view(YEAR_2001))])).closed == 0

    windows = sales.monitor.windows
    assert (windows.late, windows.late_views, windows.watermark) == (1, 1, watermark)


def test_a_click_dated_in_the_future_on_the_only_live_path_does_not_close_every_window_either() -> None:
    clock = Clock()
    sales = state(clock)
    sales.apply(PackedBatch("orders", "orders:0>0", [(0, order(2.5 * HOUR))]))
    clock.now += 6.0  # the orders path falls silent; the clicks path goes on, one click dated by a device clock
    sales.apply(PackedBatch("views", "clicks:0>0", [(0, view(2.6 * HOUR)), (1, view(200 * HOUR))]))

    assert sales.monitor.windows.watermark == 2.5 * HOUR  # before: 200 hours, every later order late
    sales.apply(PackedBatch("orders", "orders:0>0", [(1, order(2.7 * HOUR))]))
    assert sales.monitor.windows.late == 0


class Served:
    """A Redis pipeline that keeps the forecast hashes written and deleted (the alerts it ignores)."""

    def __init__(self) -> None:
        self.views: dict[str, dict[str, str]] = {}

    def hset(self, key: str, mapping: dict[str, str]) -> None:
        self.views[key] = mapping

    def delete(self, key: str) -> None:
        self.views.pop(key, None)

    def eval(self, *args: object) -> None:
        pass


def _shop() -> list[tuple[str, dict]]:
    """A simulated shop's orders and product views (as the customers stage sends them), each with its path."""
    from streams.tools.evaluation.forecasting import simulator_records
    from streams.tools.simulation import ShopSimulator, SimulatorConfig

    records = simulator_records(ShopSimulator(SimulatorConfig(seed=3, customers=200, days=5)))
    return [(f"clicks:{int(r['ts']) % 2}>0" if r.pop("view", False) else f"orders:{int(r['ts']) % 2}>1", r)
            for r in records]


def _serve(shop: list[tuple[str, dict]], ahead: str, skew: float, batch: int) -> tuple[dict, dict]:
    """Send ``shop`` with the ``ahead`` paths ``skew`` seconds of event time before the others, ``batch`` records at
    a time; the paths ahead finish first and fall silent while the others deliver their tail (a second a batch).
    Returns the forecast views served and the late counts."""
    from streams.pipeline.stages.sales import publish_sales
    from streams.pipeline.views import RedisViews

    settings = KairosSettings()
    views, served, clock = RedisViews(settings), Served(), Clock()
    sales = SalesState(SalesState.new(settings).monitor, idle_seconds=5.0, clock=clock)
    arrival = sorted(shop, key=lambda item: item[1]["ts"] - (skew if item[0].startswith(ahead) else 0.0))
    offsets: dict[str, int] = {}
    last_ahead = max(i for i, (path, _) in enumerate(arrival) if path.startswith(ahead))
    for first in range(0, len(arrival), batch):
        chunk = arrival[first:first + batch]
        for path in sorted({path for path, _ in chunk}):
            entries = []
            for p, record in chunk:
                if p == path:
                    entries.append((offsets.get(path, 0), record))
                    offsets[path] = offsets.get(path, 0) + 1
            kind = "views" if path.startswith("clicks") else "orders"
            publish_sales(served, views, sales.apply(PackedBatch(kind, path, entries)))
        # Once the paths ahead are done, a second a batch: they fall silent while the others still deliver.
        clock.now += 0.01 if first + batch <= last_ahead else 1.0
    clock.now += 6.0  # the stream stopped
    publish_sales(served, views, sales.tick())
    windows = sales.monitor.windows
    return served.views, {"late": windows.late, "late_views": windows.late_views,
                          "late_corrections": sales.monitor.late_corrections}


def test_the_same_shop_in_any_arrival_is_served_the_same_forecasts() -> None:
    """Orders ahead of the clicks (a backfill), clicks ahead (orders held back), or in step, few or many per batch:
    the same windows close and the same series are served with the same forecasts.

    Before: the clicks' paths, running past the last order once the orders' paths fell silent, closed one more
    window (a SKU that had just entered the top was served in one arrival and not in the other), and a SKU that
    left the top and came back within one advance kept its old forecaster (or its stale view).
    """
    shop = _shop()
    reference, late = _serve(shop, "orders", 0.0, 1)
    assert late == {"late": 0, "late_views": 0, "late_corrections": 0}
    assert sum(key.split(":")[2] == "sku" for key in reference) >= 40  # of the 50 top SKUs
    for ahead, skew, batch in [("orders", 6 * HOUR, 40), ("clicks", 12 * HOUR, 400), ("orders", 30 * HOUR, 2000)]:
        served, late = _serve(shop, ahead, skew, batch)
        assert late == {"late": 0, "late_views": 0, "late_corrections": 0}, (ahead, skew, batch)
        assert sorted(served) == sorted(reference), (ahead, skew, batch)
        assert served == reference, (ahead, skew, batch)


def test_a_packet_whose_later_batch_is_a_new_path_loses_nothing_as_late() -> None:
    # One customers chunk: its first orders path from hour 0.2 to 5, then a path never heard before, from hour 0.5.
    packet = [PackedBatch("orders", "orders:0>0", [(0, order(0.2 * HOUR)), (1, order(5 * HOUR))]),
              PackedBatch("orders", "orders:1>0", [(0, order(0.5 * HOUR)), (1, order(4.5 * HOUR))])]
    clock = Clock()
    sales = state(clock)
    fold_packet(sales, packet)
    assert sales.monitor.windows.late == 0 and sales.watermark(clock.now) == 4.5 * HOUR
    # Batch by batch, the first batch's tick closes hours 0-4 before the second path is heard.
    clock = Clock()
    one_by_one = state(clock)
    for batch in packet:
        one_by_one.apply(batch)
    assert one_by_one.monitor.windows.late == 1
