"""Traffic anomalies: per-minute shop signals in event time, one monitor over every event.

The customers stage sends a small traffic record for each accepted view,
add-to-cart, order and payment (:func:`traffic_record`: event time, kind,
category / country / payment method, payment status, whether the device is
new to the customer), and an empty entry for each dead letter, to
``<app_id>-anomaly`` (one partition: a minute's counts need every event).
:class:`AnomalyState` folds them into a :class:`~models.anomaly.TrafficMonitor`
behind a replay guard, closes a minute once every active upstream path has
passed its end plus the allowed lateness (the same watermark as the sales
stage: the slowest path, a path silent for ``idle_seconds`` of wall clock
not holding the others), and is checkpointed with
:mod:`streams.pipeline.snapshots`. Each closed minute publishes the scopes'
views (``kairos:anomaly:{scope}:{key}``) and the ``anomaly`` alerts; a replay
after a crash publishes the same ones again (absolute views, alert ids per
scope and minute).

A dead letter carries no event time: it is counted in the minute of the
latest event its path (source partition through a customers partition)
delivered before it, which depends on the events only; a dead letter before
any valid event of its path is counted as ``dead_undated``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from models.anomaly import AnomalyAlert, TrafficMonitor, TrafficUpdate
from streams.pipeline.packing import PackedBatch
from streams.pipeline.path_clock import PathClock
from streams.pipeline.replay_guard import AppliedOffsets
from streams.pipeline.views import Alert, RedisViews, iso
from streams.settings import KairosSettings

#: Minutes scored per call at most (each scores every scope; a minute where traffic fell costs ~7 ms over ~22
#: scopes): after a replay's jump in event time, thousands of minutes fall due at once, and scoring them in one
#: go blocked the worker's event loop for seconds (a py-spy timeline of the bench's latency phase: 0.5-0.8 s
#: blocks, 2.8 s in all).
MINUTES_PER_TICK = 10
#: Click actions the monitor counts, and their traffic kinds.
CLICK_KINDS = {"view": "view", "add_to_cart": "cart"}


def traffic_record(event_type: str, record: dict[str, Any], new_device: bool = False) -> dict[str, Any] | None:
    """What the anomaly stage needs of one accepted event (``None``: nothing, e.g. a search click).

    >>> traffic_record("payments", {"ts": 60.0, "method": "card", "status": "declined", "billing_country": "DE"})
    {'ts': 60.0, 'kind': 'payment', 'method': 'card', 'status': 'declined', 'country': 'DE', 'new_device': False}
    >>> traffic_record("clicks", {"ts": 1.0, "action": "search"}) is None
    True
    """
    if event_type == "clicks":
        kind = CLICK_KINDS.get(record["action"])
        return None if kind is None else {"ts": record["ts"], "kind": kind, "category": record.get("category")}
    if event_type == "orders":
        return {"ts": record["ts"], "kind": "order", "country": record.get("country")}
    if event_type == "payments":
        return {"ts": record["ts"], "kind": "payment", "method": record["method"], "status": record.get("status"),
                "country": record.get("billing_country"), "new_device": new_device}
    return None


class AnomalyState:
    """The traffic monitor, the offsets it has applied per upstream path and each path's event time."""

    STATE = ("AnomalyState", 1)

    def __init__(self, monitor: TrafficMonitor, applied: AppliedOffsets | None = None,
                 paths: dict[str, float] | None = None, idle_seconds: float = 5.0,
                 clock: Callable[[], float] = time.monotonic, dead_undated: int = 0) -> None:
        self.monitor = monitor
        self.applied = applied or AppliedOffsets()
        #: The upstream paths' event times: the watermark (see :mod:`..path_clock`).
        self.paths = PathClock(paths, idle_seconds, clock)
        self.dead_undated = dead_undated

    @classmethod
    def new(cls, settings: KairosSettings) -> AnomalyState:
        return cls(TrafficMonitor(scopes=settings.anomaly_scopes, allowed_lateness=settings.anomaly_lateness_seconds,
                                  max_scopes=settings.anomaly_max_scopes,
                                  scope_threshold=settings.anomaly_scope_threshold,
                                  detector={"threshold": settings.anomaly_threshold,
                                            "signal_thresholds": {
                                                "conversion_rate": settings.anomaly_conversion_threshold},
                                            "warmup": settings.anomaly_warmup_minutes}),
                   idle_seconds=settings.anomaly_idle_path_seconds)

    def apply(self, batch: PackedBatch) -> TrafficUpdate:
        """Count the batch's new records (dead letters at their path's event time), then close what the
        watermark passed."""
        self.add(batch)
        return self.tick()

    def add(self, batch: PackedBatch) -> None:
        """Count the batch's new records (nothing closes before :meth:`tick`: see ``path_clock.fold_packet``)."""
        add, path = self.monitor.add, batch.path
        latest = self.paths.paths.get(path)
        applied = last = self.applied.applied(path)  # a path's entries come in offset order
        for offset, record in batch.entries:
            fresh = offset > last
            if fresh:
                last = offset
            if record is None:
                if fresh:
                    if latest is None:
                        self.dead_undated += 1
                    else:
                        add({"ts": latest, "kind": "dead"})
                continue
            latest = record["ts"] if latest is None else max(latest, record["ts"])
            if fresh:
                add(record)
        if last > applied:
            self.applied.fresh(path, last)
        if latest is not None:
            self.paths.heard(path, latest)

    def tick(self, now: float | None = None) -> TrafficUpdate:
        """Close the minutes the watermark has passed (after each internal message, and on a timer when input
        stops), at most ``MINUTES_PER_TICK`` scored per call (``pending`` then says more are due: the timer goes on
        at once, yielding the event loop between calls)."""
        mark = self.paths.watermark(now)
        return self.monitor.advance(-math.inf if mark is None else mark, budget=MINUTES_PER_TICK)

    def views(self) -> TrafficUpdate:
        """Every scope's latest minute as served now, without alerts: for a Redis that lost its views."""
        return self.monitor.views()

    def metrics(self) -> dict[str, Any]:
        mark = self.paths.watermark()
        return {**self.monitor.metrics(), "dead_undated": self.dead_undated,
                "watermark": iso(mark) if mark is not None and math.isfinite(mark) else "-"}

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.STATE[0], "version": self.STATE[1], "monitor": self.monitor.state_dict(),
                "applied": self.applied.to_state(), "paths": self.paths.to_state(),
                "dead_undated": self.dead_undated}

    @classmethod
    def from_state(cls, state: dict[str, Any], idle_seconds: float = 5.0,
                   clock: Callable[[], float] = time.monotonic) -> AnomalyState:
        return cls(TrafficMonitor.from_state(state["monitor"]), AppliedOffsets(state["applied"]), state["paths"],
                   idle_seconds, clock, dead_undated=state["dead_undated"])


def anomaly_alert(raised: AnomalyAlert) -> Alert:
    """The ``anomaly`` alert of one episode (stable id: scope and first minute).

    >>> from models.anomaly import Moved
    >>> alert = anomaly_alert(AnomalyAlert("all:all", 1795327200.0, 7.2,
    ...                                    (Moved("conversion_rate", 5, 0.0, 0.21, -7.2),)))
    >>> alert.alert_id, alert.reasons
    ('anomaly:all:all:1795327200', ['conversion_rate 0 over the last 5 minutes against a usual 0.21 (-7.2 sd)'])
    """
    return Alert(kind="anomaly", alert_id=f"anomaly:{raised.scope}:{raised.minute:.0f}", subject=raised.scope,
                 score=raised.score, reasons=raised.reasons(), ts=raised.minute,
                 extra={"scope": raised.scope, "minute": iso(raised.minute),
                        "signals": [{"signal": m.signal, "minutes": m.minutes, "value": m.value, "usual": m.usual,
                                     "z": round(m.z, 2)} for m in raised.moved]})


def anomaly_fields(view: dict[str, Any]) -> dict[str, str]:
    """A scope's latest minute as flat Redis hash fields."""
    return {name: iso(value) if name == "minute" else str(value) for name, value in view.items()}


def publish_anomalies(pipe: Any, views: RedisViews, updates: list[TrafficUpdate]) -> list[Alert]:
    """Add the updates' scope views (each scope's key once, its latest minute) and alerts to ``pipe``; return the
    alerts (for the topic)."""
    keys = views.keys
    latest = {scope: view for update in updates for scope, view in update.views.items()}
    for scope, view in latest.items():
        kind, _, value = scope.partition(":")
        pipe.hset(keys.anomaly(kind, value), mapping=anomaly_fields(view))
    if latest:
        pipe.zadd(keys.anomaly_scopes(), {scope: view["score"] for scope, view in latest.items()})
    alerts = [anomaly_alert(raised) for update in updates for raised in update.alerts]
    for alert in alerts:
        views.alert(pipe, alert)
    return alerts
