"""Conversion propensity in the stream: live sessions scored on every click, learned when they end.

The customers stage sends a small session record for each accepted click
(session, customer, action, price, and the customer's orders so far) and
each order (:func:`session_values`, a list of field values) to ``<app_id>-sessions`` (one
partition: one model learns from every session). :class:`SessionState`
holds the records it has not yet applied in a buffer and applies them **in
event-time order** (ties by path and offset) up to the watermark of its
upstream paths (:mod:`..path_clock`: the slowest path still heard from),
into a :class:`~models.propensity.SessionTracker`; so the sessions, their
scores and what the model learns depend on the events only, not on how they
were batched or interleaved. The buffer holds what the slowest path has not
reached yet (the ingest's event-time alignment bounds that); beyond
``max_waiting`` records (``KAIROS_SESSIONS_MAX_WAITING``) the earliest are applied anyway (counted).

Each batch publishes the sessions changed (``kairos:session:{id}``; the
clicked ones scored and written at most every ``FLUSH_SECONDS`` of wall
clock, so a session clicked many times in a replay is written once, the
ended ones at once), each customer's latest session id when one starts
(``kairos:propensity:customer:{id}``), the model
(``kairos:propensity:model``: sessions learned, progressive AUC, its top
rules) and ``abandon`` alerts; the state is checkpointed with
:mod:`streams.pipeline.snapshots` (the replay guard inside), so a replay
after a crash publishes the same again. Erased customers' open sessions are
dropped at the next tick (``kairos:erasures:recent``).
"""

from __future__ import annotations

import heapq
import json
import time
from collections.abc import Callable
from typing import Any

from models.propensity import AbandonAlert, ConversionClassifier, PropensityUpdate, SessionTracker
from streams.pipeline.packing import PackedBatch
from streams.pipeline.path_clock import PathClock
from streams.pipeline.replay_guard import AppliedOffsets
from streams.pipeline.views import Alert, RedisViews, iso
from streams.settings import KairosSettings

#: Least wall-clock seconds between two flushes (scores of the sessions clicked since, views written); what
#: the model learns and the alerts do not depend on it.
FLUSH_SECONDS = 0.1
#: Work done per call at most (a record applied, a session ended or learned, a minute closed): after a jump of
#: event time (a backfill's end) the sessions that time out are ended and learned in slices, with the event
#: loop free in between (``PropensityUpdate.pending``), and give what one call would.
WORK_PER_TICK = 500
#: Records waiting for the watermark, at most, when no settings say (``sessions_max_waiting``'s default).
MAX_WAITING: int = KairosSettings.model_fields["sessions_max_waiting"].default


#: A click's session record on the wire (``<app_id>-sessions``) is the list of these fields' values, an order's the
#: first three of :data:`ORDER_FIELDS`': about 80 bytes against 180 for the dict, and the snapshots hold the
#: records waiting for the watermark in the same form. Unset optional fields (``price``, ``last_order_ts``) are
#: ``None`` there and absent from the record.
CLICK_FIELDS = ("ts", "kind", "session_id", "customer_id", "action", "orders_before", "clicks_before", "price",
                "last_order_ts")
ORDER_FIELDS = ("ts", "kind", "customer_id")
_OPTIONAL = ("price", "last_order_ts")


def session_values(event_type: str, record: dict[str, Any], orders_before: int = 0,
                   last_order_ts: float | None = None, clicks_before: int = 0) -> list[Any] | None:
    """What the sessions stage needs of one accepted click or order, as sent (``None``: nothing); a click carries
    its customer's history so far (orders, when the last was, clicks).

    >>> session_values("clicks", {"ts": 5.0, "session_id": "s", "customer_id": "c", "action": "view", "sku": "A"}, 2)
    [5.0, 'click', 's', 'c', 'view', 2, 0, None, None]
    >>> session_values("orders", {"ts": 9.0, "customer_id": "c", "order_id": "o"})
    [9.0, 'order', 'c']
    """
    if event_type == "clicks":
        return [record["ts"], "click", record["session_id"], record["customer_id"], record["action"], orders_before,
                clicks_before, record.get("price"), last_order_ts]
    if event_type == "orders":
        return [record["ts"], "order", record["customer_id"]]
    return None


def session_fields(values: list[Any] | dict[str, Any]) -> dict[str, Any]:
    """The record of :func:`session_values` output, as the tracker takes it (a record sent as a dict, before the
    list form, comes back as it is).

    >>> session_fields([5.0, 'click', 's', 'c', 'view', 2, 0, 9.5, None])
    {'ts': 5.0, 'kind': 'click', 'session_id': 's', 'customer_id': 'c', 'action': 'view', 'orders_before': 2, 'clicks_before': 0, 'price': 9.5}
    """
    if isinstance(values, dict):
        return values
    if values[1] == "order":
        return dict(zip(ORDER_FIELDS, values))
    found = dict(zip(CLICK_FIELDS, values))
    for name in _OPTIONAL:
        if found[name] is None:
            del found[name]
    return found


def session_record(event_type: str, record: dict[str, Any], orders_before: int = 0,
                   last_order_ts: float | None = None, clicks_before: int = 0) -> dict[str, Any] | None:
    """:func:`session_values` as the record the tracker takes.

    >>> session_record("clicks", {"ts": 5.0, "session_id": "s", "customer_id": "c", "action": "view", "sku": "A"}, 2)
    {'ts': 5.0, 'kind': 'click', 'session_id': 's', 'customer_id': 'c', 'action': 'view', 'orders_before': 2, 'clicks_before': 0}
    >>> session_record("orders", {"ts": 9.0, "customer_id": "c", "order_id": "o"})
    {'ts': 9.0, 'kind': 'order', 'customer_id': 'c'}
    """
    values = session_values(event_type, record, orders_before, last_order_ts, clicks_before)
    return None if values is None else session_fields(values)


def _event_time(values: list[Any] | dict[str, Any]) -> float:
    return values["ts"] if isinstance(values, dict) else values[0]


class SessionState:
    """The session tracker, the records waiting for the watermark, and the offsets applied per path."""

    STATE = ("SessionState", 1)

    def __init__(self, tracker: SessionTracker, applied: AppliedOffsets | None = None,
                 paths: dict[str, float] | None = None, idle_seconds: float = 5.0,
                 clock: Callable[[], float] = time.monotonic,
                 waiting: list[tuple[float, str, int, dict[str, Any]]] | None = None, released_early: int = 0,
                 max_waiting: int = MAX_WAITING) -> None:
        self.tracker = tracker
        self.applied = applied or AppliedOffsets()
        self.paths = PathClock(paths, idle_seconds, clock)
        #: Records not yet applied, a heap by (event time, path, offset).
        self.waiting = [tuple(entry) for entry in waiting or []]
        heapq.heapify(self.waiting)
        self.released_early = released_early
        #: Records waiting, at most (then the earliest are applied without waiting, counted in ``released_early``).
        self.max_waiting = max_waiting
        self._flushed = float("-inf")

    @classmethod
    def new(cls, settings: KairosSettings) -> SessionState:
        return cls(SessionTracker(ConversionClassifier(grace_period=settings.propensity_grace_period),
                                  **tracker_settings(settings)),
                   idle_seconds=settings.sessions_idle_path_seconds, max_waiting=settings.sessions_max_waiting)

    def apply(self, batch: PackedBatch) -> PropensityUpdate:
        """Buffer the batch's new records, then apply what the watermark has passed."""
        self.add(batch)
        return self.tick()

    def add(self, batch: PackedBatch) -> None:
        """Buffer the batch's new records (nothing is applied before :meth:`tick`: see
        ``path_clock.fold_packet``)."""
        latest = max((_event_time(values) for _, values in batch.entries if values is not None), default=None)
        waiting, path = self.waiting, batch.path
        for offset, values in self.applied.fresh_entries(path, batch.entries):
            if values is not None:
                heapq.heappush(waiting, (_event_time(values), path, offset, values))
        if latest is not None:
            self.paths.heard(batch.path, latest)

    def tick(self, now: float | None = None) -> PropensityUpdate:
        """Apply the waiting records up to the watermark, close the minutes it passed; return what changed (the
        sessions clicked since the last flush scored at most every ``FLUSH_SECONDS``)."""
        now = self.paths.clock() if now is None else now
        waiting, tracker = self.waiting, self.tracker
        budget = WORK_PER_TICK
        while len(waiting) > self.max_waiting:
            tracker.add(session_fields(heapq.heappop(waiting)[3]))
            self.released_early += 1
        mark = self.paths.watermark(now)
        if mark is not None:
            while waiting and waiting[0][0] <= mark and budget > 0:
                budget -= tracker.advance(waiting[0][0], budget)  # the minutes before the record, budgeted
                if tracker.closing:
                    break
                tracker.add(session_fields(heapq.heappop(waiting)[3]))
                budget -= 1
            if budget > 0 and not tracker.closing:
                tracker.advance(mark, budget)
        # More is due: a close stopped part-way, records the watermark passed, or minutes the budget left unclosed.
        pending = mark is not None and (bool(waiting) and waiting[0][0] <= mark or tracker.due(mark))
        if pending or now - self._flushed < FLUSH_SECONDS:
            # Ended sessions and alerts go out at once (a checkpoint may follow); open sessions are scored
            # neither more often than FLUSH_SECONDS nor in the middle of a close (the model is half-way).
            update = tracker.flush(score=False)
        else:
            self._flushed = now
            update = tracker.flush()
        update.pending = pending
        return update

    def metrics(self) -> dict[str, Any]:
        mark = self.paths.watermark()
        return {**self.tracker.metrics(), "waiting": len(self.waiting), "released_early": self.released_early,
                "watermark": iso(mark) if mark is not None else "-"}

    def views(self) -> PropensityUpdate:
        """The open sessions' views, the customers' pointers and the model view as served now: for a Redis that lost
        its views (see :meth:`~models.propensity.SessionTracker.views`)."""
        return self.tracker.views()

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.STATE[0], "version": self.STATE[1], "tracker": self.tracker.state_dict(),
                "applied": self.applied.to_state(), "paths": self.paths.to_state(),
                # The heap as it is (a copy: packed in a worker thread), not sorted: restoring heapifies it, and sorting
                # a backfill's 200,000 waiting records held the event loop for a tenth of a second each checkpoint.
                "waiting": list(self.waiting), "released_early": self.released_early}

    @classmethod
    def from_state(cls, state: dict[str, Any], settings: KairosSettings | None = None,
                   clock: Callable[[], float] = time.monotonic) -> SessionState:
        """Rebuild from :meth:`state_dict` output; ``settings`` (when given) override the tracker's."""
        params = tracker_settings(settings) if settings is not None else {}
        idle = settings.sessions_idle_path_seconds if settings is not None else 5.0
        limit = settings.sessions_max_waiting if settings is not None else MAX_WAITING
        return cls(SessionTracker.from_state(state["tracker"], **params), AppliedOffsets(state["applied"]),
                   state["paths"], idle, clock, state["waiting"], state["released_early"], limit)


def tracker_settings(settings: KairosSettings) -> dict[str, Any]:
    """The :class:`SessionTracker` parameters ``settings`` give."""
    return {"timeout": settings.session_timeout_seconds, "max_open": settings.sessions_max_open,
            "abandon_cart_value": settings.abandon_cart_value, "abandon_below": settings.abandon_below,
            "warmup": settings.propensity_warmup_sessions}


def abandon_alert(raised: AbandonAlert) -> Alert:
    """The ``abandon`` alert of one session (stable id: the session).

    >>> abandon_alert(AbandonAlert("s1", "c1", 1795327200.0, 0.12, 0.64, 180.0)).reasons
    ['cart of 180.00 now converts at 12% (was 64%)']
    """
    return Alert(kind="abandon", alert_id=f"abandon:{raised.session_id}", subject=raised.session_id,
                 score=raised.score, reasons=raised.reasons(), ts=raised.ts,
                 extra={"customer_id": raised.customer_id, "session_id": raised.session_id,
                        "cart_value": raised.cart_value, "propensity": raised.score, "peak": raised.peak})


def publish_sessions(pipe: Any, views: RedisViews, updates: list[PropensityUpdate], tracker: SessionTracker,
                     ttl: int) -> list[Alert]:
    """Add the updates' session and customer views (each key once), the model view when it learned, and the
    alerts to ``pipe``; return the alerts (for the topic)."""
    keys = views.keys
    sessions = {sid: view for update in updates for sid, view in update.sessions.items()}
    customers = {cid: sid for update in updates for cid, sid in update.customers.items()}
    for session_id, view in sessions.items():
        key = keys.session(session_id)
        pipe.hset(key, mapping=view_fields(view))
        pipe.expire(key, ttl)  # from its latest view (scored at most every few seconds while open), then its end
    for customer_id, session_id in customers.items():  # each with its session's view, in the same pipeline
        pipe.set(keys.propensity_of(customer_id), session_id, ex=ttl)
    if any(update.learned for update in updates):
        pipe.hset(keys.propensity_model(), mapping=model_fields(tracker.model_view()))
    alerts = [abandon_alert(raised) for update in updates for raised in update.alerts]
    for alert in alerts:
        views.alert(pipe, alert)
    return alerts


def model_fields(model: dict[str, Any]) -> dict[str, str]:
    """:meth:`~models.propensity.SessionTracker.model_view` as flat Redis hash fields (rules as JSON)."""
    return {"learned": str(model["learned"]), "converted": str(model["converted"]),
            "roc_auc": "" if model["roc_auc"] is None else str(model["roc_auc"]), "window": str(model["window"]),
            "rules": json.dumps(model["rules"]), "updated_at": f"{time.time():.3f}"}


def view_fields(view: dict[str, Any]) -> dict[str, str]:
    """A session view as flat Redis hash fields (times as ISO text, no score yet: empty)."""
    return {name: iso(value) if name in ("started", "last_click") else "" if value is None else str(value)
            for name, value in view.items()}
