"""Sales windows, forecasts and surge alerts: one monitor over every order.

The customers stage sends each accepted order, and each accepted product
view (``view`` click with a SKU, as ``{ts, sku, category}``), to
``<app_id>-sales`` (one partition: the total and category series need every
line and view). Views are the interest the surge detector weighs with the
orders (see :class:`~models.forecasting.SurgeDetector`). :class:`SalesState` folds them into a
:class:`~models.forecasting.SalesMonitor` (tumbling event-time windows with
allowed lateness, a forecaster per series, a surge detector) behind a replay
guard, and is checkpointed with :mod:`streams.pipeline.snapshots`. Each
advance publishes the changed forecast views and alerts; a replay after a
crash publishes the same ones again (absolute views, alert ids per series and
window).
"""

from __future__ import annotations

import json
from typing import Any

from models.forecasting import SalesForecaster, SalesMonitor, SalesUpdate, SalesWindows, SurgeDetector
from streams.pipeline.packing import PackedBatch
from streams.pipeline.replay_guard import AppliedOffsets
from streams.pipeline.views import Alert, RedisViews
from streams.settings import KairosSettings


class SalesState:
    """The sales monitor and the offsets it has applied per upstream path."""

    STATE = ("SalesState", 1)

    def __init__(self, monitor: SalesMonitor, applied: AppliedOffsets | None = None) -> None:
        self.monitor = monitor
        self.applied = applied or AppliedOffsets()

    @classmethod
    def new(cls, settings: KairosSettings) -> SalesState:
        size = settings.sales_window_seconds
        windows = SalesWindows(size=size, allowed_lateness=settings.sales_allowed_lateness_seconds,
                               top_skus=settings.sales_top_skus)
        forecaster = SalesForecaster(size, season_length=settings.sales_season_windows,
                                     horizon=settings.sales_horizon_windows)
        detector = SurgeDetector(ratio=settings.surge_ratio, threshold=settings.surge_threshold,
                                 slump_threshold=settings.slump_threshold, recovery=settings.surge_recovery_windows,
                                 interest_threshold=settings.surge_interest_threshold)
        return cls(SalesMonitor(windows, forecaster, detector))

    def apply(self, batch: PackedBatch) -> SalesUpdate:
        """Count the batch's new orders or views, then close the windows the event time passed."""
        add = self.monitor.add_view if batch.event_type == "views" else self.monitor.add_order
        for offset, record in batch.entries:
            if record is not None and self.applied.fresh(batch.path, offset):
                add(record)
        return self.monitor.advance()

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.STATE[0], "version": self.STATE[1], "monitor": self.monitor.state_dict(),
                "applied": self.applied.to_state()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SalesState:
        return cls(SalesMonitor.from_state(state["monitor"]), AppliedOffsets(state["applied"]))


def forecast_fields(view: dict[str, Any]) -> dict[str, str]:
    """A forecast view as flat Redis hash fields (lists as JSON)."""
    return {k: json.dumps(v) if isinstance(v, (list, dict)) else str(v) for k, v in view.items()}


def publish_sales(pipe: Any, views: RedisViews, update: SalesUpdate) -> list[Alert]:
    """Add the update's forecast views and alerts to ``pipe``; return the alerts (for the topic)."""
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
                   "forecast": raised.forecast, "lower": raised.lower, "upper": raised.upper},
        )
        views.alert(pipe, alert)
        alerts.append(alert)
    return alerts
