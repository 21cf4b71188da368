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
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import Any

from models.forecasting import SalesForecaster, SalesMonitor, SalesUpdate, SalesWindows, SurgeDetector
from streams.pipeline.packing import PackedBatch
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
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.monitor = monitor
        self.applied = applied or AppliedOffsets()
        #: Per upstream path, the latest event time it delivered.
        self.paths = dict(paths or {})
        self.idle_seconds = idle_seconds
        self._clock = clock
        # Per path, when it last delivered (wall clock; a restored path counts as just heard).
        now = clock()
        self._heard = dict.fromkeys(self.paths, now)
        # Windows stay open for the first ``idle_seconds`` (new or restored), so every live path is heard from
        # before the first closes: a path not yet heard cannot hold the others back.
        self._started = now

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
                   idle_seconds=settings.sales_idle_path_seconds)

    def apply(self, batch: PackedBatch) -> SalesUpdate:
        """Count the batch's new orders or views, then close the windows every active path has passed."""
        add = self.monitor.add_view if batch.event_type == "views" else self.monitor.add_order
        latest = None
        for offset, record in batch.entries:
            if record is not None:
                latest = record["ts"] if latest is None else max(latest, record["ts"])
                if self.applied.fresh(batch.path, offset):
                    add(record)
        now = self._clock()
        if latest is not None:
            self.paths[batch.path] = max(self.paths.get(batch.path, latest), latest)
            self._heard[batch.path] = now
        return self.tick(now)

    def tick(self, now: float | None = None) -> SalesUpdate:
        """Close the windows the watermark has passed (called after each batch, and on a timer: when the stream
        stops, the paths fall idle and the last windows close)."""
        now = self._clock() if now is None else now
        mark = self.watermark(now)
        return self.monitor.advance(-math.inf if mark is None else mark)

    def watermark(self, now: float) -> float | None:
        """The event time every path heard within ``idle_seconds`` has reached, and no later than the latest order;
        ``None`` holds every window open.

        Views do not move the event time (a click dated in the future by a shopper's device clock must not close
        every window), whether every path is silent (nothing lags: the latest order's event time) or only the
        orders' paths are: a clicks path running past the last order would close windows that the orders' event
        time leaves open, so the last windows closed would depend on which paths fell idle first (wall clock).
        """
        if now - self._started < self.idle_seconds or not self.paths:
            return None
        order_time = self.monitor.windows.order_time
        active = [ts for path, ts in self.paths.items() if now - self._heard[path] <= self.idle_seconds]
        if not active or order_time is None:
            return order_time
        return min(*active, order_time)

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.STATE[0], "version": self.STATE[1], "monitor": self.monitor.state_dict(),
                "applied": self.applied.to_state(), "paths": dict(sorted(self.paths.items()))}

    @classmethod
    def from_state(cls, state: dict[str, Any], idle_seconds: float = 5.0, nowcast: bool = False) -> SalesState:
        """Rebuild from :meth:`state_dict` output (version 1 kept no paths: they are learned again)."""
        monitor = SalesMonitor.from_state(state["monitor"])
        monitor.nowcast = nowcast
        return cls(monitor, AppliedOffsets(state["applied"]), state.get("paths"), idle_seconds)


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
    return alerts
