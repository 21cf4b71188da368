"""Sales windows, forecasts and surge alerts: one monitor over every order.

The customers stage sends each accepted order, and each accepted product
view (``view`` click with a SKU, as ``{ts, sku, category}``), to
``<app_id>-sales`` (one partition: the total and category series need every
line and view). Views are the interest the surge detector weighs with the
orders (see :class:`~models.forecasting.SurgeDetector`). :class:`SalesState` folds them into a
:class:`~models.forecasting.SalesMonitor` (tumbling event-time windows with
allowed lateness, a forecaster per series, a surge detector) behind a replay
guard, closes a window once every active upstream path has passed it (see
:class:`SalesState`; a timer closes the last ones when the stream stops),
and is checkpointed with :mod:`streams.pipeline.snapshots`. Each
advance publishes the changed forecast views and alerts, and a ``drift``
alert for each drift of a series' forecasters (:func:`forecast_drift_alert`);
a replay after a crash publishes the same ones again (absolute views, alert
ids per series and window).

**Stock-out risk**: inventory counts (the optional ``inventory`` topic) come
the same way and go into a :class:`~models.forecasting.StockBook` with every
order. Once it holds a count, the watermark is stepped through each window's
close (a window's end plus the allowed lateness): the monitor closes that
window, then the book is evaluated at that instant with each SKU's units
forecaster, so a view and a ``restock`` alert depend on the events only, not
on how far one batch moved the watermark. Without counts nothing of this runs.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import Any

from models.forecasting import (
    RestockAlert, SalesForecaster, SalesMonitor, SalesUpdate, SalesWindows, StockBook, SurgeDetector,
)
from streams.pipeline.packing import PackedBatch
from streams.pipeline.path_clock import PathClock
from streams.pipeline.replay_guard import AppliedOffsets
from streams.pipeline.views import Alert, RedisViews, iso
from streams.settings import KairosSettings


class SalesState:
    """The sales monitor, the offsets it has applied per upstream path and each path's event time.

    **Watermark**: orders and views reach the sales stage along many paths
    (a raw topic partition through a customers partition, ``clicks:3>1``),
    and one path can run behind another: in a replay, or while a worker
    catches up after a restart, the customers stage may be hours of event
    time further on the orders than on the clicks. A window closes when the
    *slowest* path has passed it (plus the allowed lateness), not the fastest,
    so a lagging path's events are counted instead of dropped as late. A path
    silent for ``idle_seconds`` (wall clock) does not hold the others back (a
    quiet partition would stall every window); when it speaks again, its
    events are current. Before this, on a simulated fortnight sent at full
    speed through one worker, 20,254 views and 1,171 orders were dropped as late.
    The watermark never passes the latest order's event time: views do not
    move it (see :meth:`watermark`).
    """

    STATE = ("SalesState", 2)

    def __init__(self, monitor: SalesMonitor, applied: AppliedOffsets | None = None,
                 paths: dict[str, float] | None = None, idle_seconds: float = 5.0,
                 clock: Callable[[], float] = time.monotonic, stock: StockBook | None = None) -> None:
        self.monitor = monitor
        size = monitor.windows.calendar.size
        self.stock = stock if stock is not None else StockBook(window_seconds=size)
        self.applied = applied or AppliedOffsets()
        #: The upstream paths' event times (see :mod:`..path_clock`); windows stay open while it warms up.
        self.paths = PathClock(paths, idle_seconds, clock)

    @classmethod
    def new(cls, settings: KairosSettings) -> SalesState:
        size = settings.sales_window_seconds
        # A silence longer than a week of windows is skipped, not closed window by window (see SalesWindows).
        windows = SalesWindows(size=size, allowed_lateness=settings.sales_allowed_lateness_seconds,
                               top_skus=settings.sales_top_skus, max_quiet=7 * settings.sales_season_windows)
        forecaster = SalesForecaster(size, season_length=settings.sales_season_windows,
                                     horizon=settings.sales_horizon_windows)
        detector = SurgeDetector(ratio=settings.surge_ratio, threshold=settings.surge_threshold,
                                 slump_threshold=settings.slump_threshold, recovery=settings.surge_recovery_windows,
                                 interest_threshold=settings.surge_interest_threshold)
        return cls(SalesMonitor(windows, forecaster, detector, nowcast=settings.surge_nowcast),
                   idle_seconds=settings.sales_idle_path_seconds, stock=stock_book(settings))

    def apply(self, batch: PackedBatch) -> SalesUpdate:
        """Count the batch's new orders or views, then close the windows every active path has passed."""
        self.add(batch)
        return self.tick()

    def add(self, batch: PackedBatch) -> None:
        """Count the batch's new orders or views (nothing closes before :meth:`tick`: see
        ``path_clock.fold_packet``)."""
        add = {"views": self.monitor.add_view, "inventory": self.stock.add_count}.get(batch.event_type, self._order)
        latest = max((record["ts"] for _, record in batch.entries if record is not None), default=None)
        for _, record in self.applied.fresh_entries(batch.path, batch.entries):
            if record is not None:
                add(record)
        if latest is not None:
            self.paths.heard(batch.path, latest)

    def tick(self, now: float | None = None) -> SalesUpdate:
        """Close the windows the watermark has passed (called after each internal message, and on a timer: when
        the stream stops, the paths fall idle and the last windows close)."""
        now = self.paths.clock() if now is None else now
        mark = self.watermark(now)
        if mark is None:
            return self.monitor.advance(-math.inf)
        book = self.stock
        if not len(book):
            update = self.monitor.advance(mark)
            if book.active:
                book.forget_until(max(book.evaluated, mark))
            return update
        updates = []
        for close in self._closes(book.evaluated, mark):
            update = self.monitor.advance(close)
            stock = book.evaluate(close, self._units_forecaster)
            update.stock, update.restocks = stock.views, stock.alerts
            updates.append(update)
        updates.append(self.monitor.advance(mark))
        return merge_updates(updates)

    def _order(self, order: dict[str, Any]) -> None:
        self.monitor.add_order(order)
        self.stock.add_order(order)

    def _units_forecaster(self, sku: str) -> SalesForecaster | None:
        return self.monitor.forecaster_of(f"sku:{sku}")

    def _closes(self, after: float, until: float) -> list[float]:
        """The instants in ``(after, until]`` at which a window closes (its end plus the allowed lateness); the
        last week's worth when more (a silence)."""
        windows = self.monitor.windows
        calendar, lateness = windows.calendar, windows.allowed_lateness
        last = calendar.index_of(until - lateness)
        first = last if after == -math.inf else calendar.index_of(after - lateness) + 1
        first = max(first, last - 7 * calendar.season_length * calendar.days_per_week + 1)
        return [calendar.start(index) + lateness for index in range(first, last + 1)]

    def watermark(self, now: float) -> float | None:
        """The event time every path heard within ``idle_seconds`` has reached, and no later than the latest order;
        ``None`` holds every window open.

        Views do not move the event time (a click dated in the future by a shopper's device clock must not close
        every window), whether every path is silent (nothing lags: the latest order's event time) or only the
        orders' paths are: a clicks path running past the last order would close windows that the orders' event
        time leaves open, so the last windows closed would depend on which paths fell idle first (wall clock).
        """
        if self.paths.warming(now):
            return None
        order_time = self.monitor.windows.order_time
        active = self.paths.active(now)
        if not active or order_time is None:
            return order_time
        return min(*active, order_time)

    def views(self) -> SalesUpdate:
        """Every forecast and stock view as served now, without alerts: for a Redis that lost its views."""
        return SalesUpdate(views=self.monitor.views(), stock=dict(self.stock.latest))

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.STATE[0], "version": self.STATE[1], "monitor": self.monitor.state_dict(),
                "applied": self.applied.to_state(), "paths": self.paths.to_state(),
                "stock": self.stock.state_dict()}

    @classmethod
    def from_state(cls, state: dict[str, Any], idle_seconds: float = 5.0, nowcast: bool = False,
                   settings: KairosSettings | None = None) -> SalesState:
        """Rebuild from :meth:`state_dict` output (version 1 kept no paths: they are learned again; a state
        written before stock-out risk has no book: a new one). The book takes ``settings``' stock settings."""
        monitor = SalesMonitor.from_state(state["monitor"])
        monitor.nowcast = nowcast
        stock = StockBook.from_state(state["stock"]) if "stock" in state else None
        if settings is not None:
            stock = stock_book(settings, stock)
        return cls(monitor, AppliedOffsets(state["applied"]), state.get("paths"), idle_seconds, stock=stock)


def stock_book(settings: KairosSettings, book: StockBook | None = None) -> StockBook:
    """A new :class:`StockBook` with the settings' parameters, or ``book`` given them (after a restore)."""
    book = book if book is not None else StockBook()
    book.horizon_hours = settings.restock_horizon_hours
    book.lookahead_hours = settings.stock_lookahead_hours
    book.retain_seconds = settings.inventory_late_seconds
    book.max_skus = settings.stock_max_skus
    book.window_seconds = settings.sales_window_seconds
    return book


def merge_updates(updates: list[SalesUpdate]) -> SalesUpdate:
    """One update holding several in order (later views replace earlier ones)."""
    if len(updates) == 1:
        return updates[0]
    merged = SalesUpdate()
    for update in updates:
        merged.alerts += update.alerts
        removed = (set(merged.removed) - set(update.views)) | set(update.removed)
        merged.views = {series: view for series, view in (merged.views | update.views).items()
                        if series not in update.removed or series in update.views}
        merged.removed = sorted(removed)
        merged.closed += update.closed
        merged.drifts += update.drifts
        merged.stock |= update.stock
        merged.restocks += update.restocks
    return merged


def sales_view(click: dict[str, Any]) -> dict[str, Any]:
    """What the sales stage needs of a product view click: its event time, SKU and category."""
    return {"ts": click["ts"], "sku": click["sku"], "category": click.get("category")}


def forecast_fields(view: dict[str, Any]) -> dict[str, str]:
    """A forecast view as flat Redis hash fields (lists as JSON)."""
    return {k: json.dumps(v) if isinstance(v, (list, dict)) else str(v) for k, v in view.items()}


def forecast_drift_alert(drift: dict[str, Any]) -> Alert:
    """The ``drift`` alert for one drift of a series' forecasters (stable id: series and window).

    >>> alert = forecast_drift_alert({"series": "total:all", "measure": "units", "window_start": 1795327200.0,
    ...                               "metric": "scaled_abs_error", "before": 0.81, "after": 2.47})
    >>> alert.alert_id, alert.subject
    ('drift:forecast:total:all:1795327200', 'forecast:total:all')
    >>> print(alert.reasons[0])
    SalesForecaster units of total:all scaled_abs_error 0.81 -> 2.47 in the window of 2026-11-22T06:00:00.000Z; forecasts adapting
    """
    text = (f"SalesForecaster {drift['measure']} of {drift['series']} {drift['metric']} {drift['before']:.3g} -> "
            f"{drift['after']:.3g} in the window of {iso(drift['window_start'])}; forecasts adapting")
    return Alert(kind="drift", alert_id=f"drift:forecast:{drift['series']}:{drift['window_start']:.0f}",
                 subject=f"forecast:{drift['series']}", score=drift["after"], reasons=[text], ts=drift["window_start"],
                 extra={"model": "SalesForecaster", **drift})


def publish_sales(pipe: Any, views: RedisViews, update: SalesUpdate) -> list[Alert]:
    """Add the update's forecast views, alerts and drift alerts to ``pipe``; return the alerts (for the topic)."""
    keys = views.keys
    for series, view in update.views.items():
        scope, _, key = series.partition(":")
        pipe.hset(keys.forecast(scope, key), mapping=forecast_fields(view))
    for series in update.removed:
        scope, _, key = series.partition(":")
        pipe.delete(keys.forecast(scope, key))
    alerts = []
    for raised in update.alerts:
        alert = Alert(
            kind=raised.kind, alert_id=f"{raised.kind}:{raised.series}:{raised.window_start:.0f}",
            subject=raised.series, score=raised.score, reasons=raised.reasons(), ts=raised.window_start,
            extra={"series": raised.series, "window_start": raised.window_start, "actual": raised.actual,
                   "forecast": raised.forecast, "lower": raised.lower, "upper": raised.upper,
                   "led_by": raised.led_by},
        )
        views.alert(pipe, alert)
        alerts.append(alert)
    for drift in update.drifts:
        alert = forecast_drift_alert(drift)
        views.alert(pipe, alert)
        alerts.append(alert)
    for sku, view in update.stock.items():
        pipe.hset(keys.stock_sku(sku), mapping=stock_fields(view))
        if "hours_to_stockout" in view:
            pipe.zadd(keys.stock_risk(), {sku: view["hours_to_stockout"]})
        else:
            pipe.zrem(keys.stock_risk(), sku)
    for raised in update.restocks:
        alert = restock_alert(raised)
        views.alert(pipe, alert)
        alerts.append(alert)
    return alerts


def stock_fields(view: dict[str, Any]) -> dict[str, str]:
    """A SKU's stock view as flat Redis hash fields (instants in ISO 8601, absent hours as ``""``).

    >>> fields = stock_fields({"sku": "A", "on_hand": 26, "as_of": 3600.0, "counted_at": 0.0, "horizon_hours": 48.0,
    ...                        "basis": "seasonal", "hours_to_stockout": 13.0, "alerted_at": None})
    >>> fields["stockout_at"], fields["hours_to_stockout_latest"], fields["alerted_at"]
    ('1970-01-01T14:00:00.000Z', '', '')
    """
    expected = view.get("hours_to_stockout")
    return {
        "sku": view["sku"], "on_hand": str(view["on_hand"]), "as_of": iso(view["as_of"]),
        "counted_at": iso(view["counted_at"]), "basis": view["basis"], "horizon_hours": f"{view['horizon_hours']:g}",
        "hours_to_stockout": "" if expected is None else f"{expected:.2f}",
        "hours_to_stockout_latest": ("" if view.get("hours_to_stockout_latest") is None
                                     else f"{view['hours_to_stockout_latest']:.2f}"),
        "stockout_at": "" if expected is None else iso(view["as_of"] + expected * 3600.0),
        "alerted_at": "" if view.get("alerted_at") is None else iso(view["alerted_at"]),
    }


def restock_alert(raised: RestockAlert) -> Alert:
    """The ``restock`` alert of a SKU (stable id: SKU and the event time it was raised at); its score is the hours
    until stock-out at the lower bound of demand."""
    return Alert(kind="restock", alert_id=f"restock:{raised.sku}:{raised.ts:.0f}", subject=f"sku:{raised.sku}",
                 score=raised.hours_to_stockout_latest, reasons=raised.reasons(), ts=raised.ts,
                 extra={"sku": raised.sku, "on_hand": raised.on_hand, "hours_to_stockout": raised.hours_to_stockout,
                        "hours_to_stockout_latest": raised.hours_to_stockout_latest,
                        "horizon_hours": raised.horizon_hours, "basis": raised.basis})
