"""Live sessions in event time: score each on its clicks, learn each when it ends, alert on abandoned carts.

Not a River estimator (it holds one): :class:`SessionTracker` takes click and
order records **in event-time order** (the stage releases them so) and keeps
one :class:`~models.propensity.session.LiveSession` per open session. A
session ends with its customer's next order (converted) or after
``timeout`` seconds of event time without a click (not converted).

**Minute epochs, so batching never matters.** The model learns only when an
event-time minute closes, and learns a session ``timeout`` seconds after its
last click whatever its outcome (in that order, then by session id): a
converted session ends at once, but learning it sooner than one that will
time out would skew what the model has seen towards the converted (at a
stream's start, the first 30 minutes of sessions learned would all be
converted). The progressive metric scores each session's features at its
last click with the model just before it learns that session (River's
``progressive_val_score`` order). Within a minute the model is fixed, so a
session's score is the same whether it is computed after each click or once
for a whole batch of clicks: :meth:`SessionTracker.flush` scores each session
clicked since the last flush once, for the served view. The ``abandon``
check runs at minute closes only, on the score at the close of each session
changed in that minute whose cart holds at least ``abandon_cart_value``: one
whose score falls below ``abandon_below`` after having reached it (while the
cart held that much) raises one ``abandon`` alert, once the model has
learned ``warmup`` sessions.

**Memory**: the open sessions (about 200 B each, at most ``max_open``: beyond
it the least recently clicked ends unlearned, counted as ``dropped``), the
model (River's ``max_size`` caps the tree), and the metric's window.

>>> tracker = SessionTracker(timeout=600.0, warmup=0)
>>> for ts, action in [(10.0, "view"), (40.0, "add_to_cart")]:
...     tracker.add({"ts": ts, "kind": "click", "session_id": "s1", "customer_id": "c1", "action": action,
...                  "price": 30.0})
>>> update = tracker.flush()
>>> update.sessions["s1"]["status"], update.sessions["s1"]["propensity"]
('open', 0.5)
>>> tracker.add({"ts": 95.0, "kind": "order", "customer_id": "c1"})
>>> tracker.advance(120.0)  # units of work: one minute closed
1
>>> update = tracker.flush()
>>> update.sessions["s1"]["status"], update.ended   # converted; learned 600 s after its last click
('converted', [])
>>> tracker.advance(660.0)  # the session learned, its minute closed
2
>>> tracker.flush().ended, tracker.model.learned
([(True, 0.5)], 1)
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from river import metrics

from models.base import check_state_tag
from models.propensity.classifier import ConversionClassifier
from models.propensity.session import LiveSession

MINUTE = 60.0


@dataclass(frozen=True)
class AbandonAlert:
    """A high-value cart whose session's conversion probability fell."""

    session_id: str
    customer_id: str
    ts: float
    score: float
    peak: float
    cart_value: float

    def reasons(self) -> list[str]:
        return [f"cart of {self.cart_value:.2f} now converts at {self.score:.0%} (was {self.peak:.0%})"]


@dataclass
class PropensityUpdate:
    """What changed since the last flush: session views, customers' latest session ids (each with a view of that
    session, never before one: a reader following the pointer finds the session),
    ended sessions' ``(converted, score)``, alerts, and whether the model learned (its view is then
    republished)."""

    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    customers: dict[str, str] = field(default_factory=dict)
    ended: list[tuple[bool, float]] = field(default_factory=list)
    alerts: list[AbandonAlert] = field(default_factory=list)
    learned: int = 0
    #: More work is due than this call did (the sessions stage bounds its work per call).
    pending: bool = False

    @property
    def publishable(self) -> bool:
        return bool(self.sessions or self.alerts or self.learned)


class SessionTracker:
    """Open sessions, the conversion model, its progressive metric and the ``abandon`` rule."""

    STATE = ("SessionTracker", 1)

    def __init__(self, model: ConversionClassifier | None = None, timeout: float = 1800.0,
                 max_open: int = 200_000, abandon_cart_value: float = 100.0, abandon_below: float = 0.3,
                 warmup: int = 500, metric_window: int = 5000) -> None:
        self.model = model if model is not None else ConversionClassifier()
        self.timeout = timeout
        self.max_open = max_open
        self.abandon_cart_value = abandon_cart_value
        self.abandon_below = abandon_below
        self.warmup = warmup
        self.metric_window = metric_window
        self.open: dict[str, LiveSession] = {}
        #: Per customer, their most recently clicked open session (an order converts it).
        self.latest_of: dict[str, str] = {}
        #: The open event-time minute's start (``None`` before the first record).
        self.minute: float | None = None
        #: The minute end a budgeted close stopped at (``None``: no close under way).
        self._closing: float | None = None
        #: Ended sessions waiting to be learned, a heap of (last click + timeout, session id, sequence, session,
        #: converted).
        self.maturing: list[tuple[float, str, int, LiveSession, bool]] = []
        #: Sessions clicked since the last score (served score stale), and since the last minute close.
        self.dirty: dict[str, None] = {}
        self.changed: dict[str, None] = {}
        self.counts = {"sessions_started": 0, "sessions_closed": 0, "sessions_converted": 0, "sessions_ended": 0,
                       "sessions_dropped": 0,
                       "orders_without_session": 0, "late_records": 0, "abandon_alerts": 0}
        self._labelled: deque[tuple[bool, float]] = deque(maxlen=metric_window)
        self._auc = metrics.RollingROCAUC(window_size=metric_window)
        self._expiry: list[tuple[float, str]] = []
        self._update = PropensityUpdate()
        #: When a list: every session learned, as (features at its last click, converted, live score, start)
        #: (for evaluations).
        self.learned_log: list[tuple[dict[str, Any], bool, float, float]] | None = None

    # -- records ------------------------------------------------------------------

    def add(self, record: dict[str, Any]) -> None:
        """Apply one click or order record (in event-time order; an earlier one counts in the open minute)."""
        ts = record["ts"]
        if self.minute is None:
            self.minute = _minute_of(ts)
        elif ts >= self.minute + MINUTE or self._closing is not None:
            self.advance(ts)
        if ts < self.minute:
            self.counts["late_records"] += 1
        if record["kind"] == "order":
            self._order(record)
        else:
            self._click(record)

    def advance(self, watermark: float, budget: float = math.inf) -> int:
        """Close the minutes that end at or before ``watermark`` (the input went quiet up to there), doing at most
        about ``budget`` units of work (a session ended or learned, a minute closed); returns the units done.

        With a budget the closes may stop part-way (:attr:`closing`): the next call goes on where this one
        stopped, and whatever the budgets, the sessions, scores, alerts and model are those of one call
        without a budget (minutes close one after another: :meth:`_close`). Records must not be added while
        :attr:`closing` (:meth:`add` finishes the close first, without a budget).
        """
        if not self.due(watermark):
            return 0
        target = _minute_of(watermark) if self._closing is None else max(_minute_of(watermark), self._closing)
        return self._close(target, budget)

    def due(self, watermark: float) -> bool:
        """Whether :meth:`advance` to ``watermark`` has minutes to close (or a budgeted close to go on with)."""
        if self._closing is not None:
            return True
        return self.minute is not None and math.isfinite(watermark) and watermark >= self.minute + MINUTE

    @property
    def closing(self) -> bool:
        """Whether a budgeted :meth:`advance` stopped before closing every minute it was asked to."""
        return self._closing is not None

    def _click(self, record: dict[str, Any]) -> None:
        session_id, customer_id = record["session_id"], record["customer_id"]
        session = self.open.get(session_id)
        if session is None:
            session = self.open[session_id] = LiveSession(
                session_id, customer_id, record["ts"], record.get("orders_before", 0), record.get("last_order_ts"),
                record.get("clicks_before", 0))
            self.counts["sessions_started"] += 1
            # Its entry is due at its first click's timeout; a later click moves it when it comes up (lazily).
            heapq.heappush(self._expiry, (record["ts"] + self.timeout, session_id))
        session.click(record)
        self.latest_of[session.customer_id] = session_id
        self.dirty[session_id] = self.changed[session_id] = None
        if len(self.open) > self.max_open:
            self._drop_oldest()

    def _order(self, record: dict[str, Any]) -> None:
        session = self.open.get(self.latest_of.get(record["customer_id"], ""))
        if session is None:
            self.counts["orders_without_session"] += 1
            return
        self._end(session, record["ts"], True)

    def _end(self, session: LiveSession, ts: float, converted: bool) -> None:
        session_id = session.session_id
        self._score(session)  # its final view: the model of the minute it ended in (whatever was flushed before)
        if self.latest_of.get(session.customer_id) == session_id:
            self._update.customers[session.customer_id] = session_id
        self._close_session(session)
        self.counts["sessions_closed"] += 1  # also the tie-break of a session id used again
        heapq.heappush(self.maturing, (session.last_click + self.timeout, session_id, self.counts["sessions_closed"],
                                       session, converted))
        self._update.sessions[session_id] = session_view(session, "converted" if converted else "ended")

    def _due(self) -> tuple[float, LiveSession] | None:
        """The open session due to time out first, and when (its expiry entry moved up to its last click)."""
        expiry = self._expiry
        while expiry:
            due, session_id = expiry[0]
            session = self.open.get(session_id)
            if session is None:
                heapq.heappop(expiry)
            elif session.last_click + self.timeout > due:
                heapq.heapreplace(expiry, (session.last_click + self.timeout, session_id))
            else:
                return due, session
        return None

    def _drop_oldest(self) -> None:
        """End the least recently clicked open session without learning it (over ``max_open``)."""
        found = self._due()
        if found is None:
            return
        heapq.heappop(self._expiry)
        self._close_session(found[1])
        self.counts["sessions_dropped"] += 1

    def _close_session(self, session: LiveSession) -> None:
        """Take an open session out of the open ones (and out of its customer's latest, if it is that)."""
        session_id = session.session_id
        del self.open[session_id]
        if self.latest_of.get(session.customer_id) == session_id:
            del self.latest_of[session.customer_id]
        self.dirty.pop(session_id, None)
        self.changed.pop(session_id, None)

    # -- minutes ------------------------------------------------------------------

    def _close(self, target: float, budget: float = math.inf) -> int:
        """Close the open minute and the minutes after it up to ``target``, one at a time, in at most about
        ``budget`` units of work; returns the units done (:attr:`closing` says whether it stopped part-way).

        At each minute end: check the high-value carts changed in the minute (the first minute only: nothing
        is added meanwhile), end the sessions timed out by then (scored with the model as it is), then learn
        every session due by then. Minutes where nothing is due are skipped in one step. Closing minute by
        minute makes a session's final score the model of the minute it ended in, however far one call
        goes (a watermark that jumps a week ends the week's sessions as seven days of calls would).
        """
        work = 0
        if self._closing is None and self.changed:
            if self.abandon_cart_value > 0 and self.model.learned >= self.warmup:
                for session_id in self.changed:
                    session = self.open[session_id]
                    if session.cart_value >= self.abandon_cart_value:
                        if session_id in self.dirty or session.score is None:
                            self._score(session)
                        self._check_abandon(session)
            self.changed = {}
        while self.minute < target:
            boundary = self._closing if self._closing is not None else self._next_boundary(target)
            self._closing = boundary
            while (found := self._due()) is not None and found[0] <= boundary:
                if work >= budget:
                    return work
                heapq.heappop(self._expiry)
                self._end(found[1], found[0], False)
                work += 1
            learned = 0
            while self.maturing and self.maturing[0][0] <= boundary:
                if work >= budget:
                    self._update.learned += learned
                    return work
                *_, session, converted = heapq.heappop(self.maturing)
                learned += 1
                work += 1
                features = session.features()
                score = self.model.predict_proba_one(features)[True]  # progressive: scored, then learned
                self._labelled.append((converted, score))
                self._auc.update(converted, score)
                self._update.ended.append((converted, score))
                if self.learned_log is not None:
                    self.learned_log.append((features, converted, score, session.started))
                self.model.learn_one(features, converted)
                self.counts["sessions_converted" if converted else "sessions_ended"] += 1
            self._update.learned += learned
            self.minute, self._closing = boundary, None
            work += 1
            if work >= budget and self.minute < target:
                self._closing = self._next_boundary(target)
                return work
        return work

    def _next_boundary(self, target: float) -> float:
        """The next minute end at which something is due (a session to end or to learn), at most ``target``."""
        assert self.minute is not None
        due = [entry[0] for entry in (self._due(), self.maturing[0] if self.maturing else None) if entry is not None]
        if not due:
            return target
        return min(target, max(self.minute + MINUTE, math.ceil(min(due) / MINUTE) * MINUTE))

    def _score(self, session: LiveSession) -> float:
        session.score = self.model.predict_proba_one(session.features())[True]
        self.dirty.pop(session.session_id, None)
        return session.score

    def _check_abandon(self, session: LiveSession) -> None:
        score = session.score
        if not session.alerted and session.peak >= self.abandon_below > score:
            session.alerted = True
            self.counts["abandon_alerts"] += 1
            self._update.alerts.append(AbandonAlert(session.session_id, session.customer_id, session.last_click,
                                                    round(score, 4), round(session.peak, 4),
                                                    round(session.cart_value, 2)))
        session.peak = max(session.peak, score)

    def flush(self, score: bool = True) -> PropensityUpdate:
        """What changed since the last flush (ended sessions' views, customers' new sessions, alerts, learning)
        and, unless ``score`` is false, the sessions clicked since, scored (they stay to score otherwise)."""
        update = self._update
        for session_id in list(self.dirty) if score else ():
            session = self.open[session_id]
            self._score(session)
            update.sessions[session_id] = session_view(session, "open")
            # A customer's pointer goes out with a view of its session (here, or at its end in _end): one started
            # since the last scoring flush has no view yet, so no pointer either.
            if self.latest_of.get(session.customer_id) == session_id:
                update.customers[session.customer_id] = session_id
        self._update = PropensityUpdate()
        return update

    def views(self) -> PropensityUpdate:
        """What is served now of the open sessions (those scored at least once), the customers' pointers to them,
        and the model (``learned``): for a Redis that lost its views. Ended sessions are not kept: their views
        come back only from a Redis that kept its data."""
        update = PropensityUpdate(learned=int(self.model.learned > 0))
        for session_id, session in sorted(self.open.items()):
            if session.score is not None:
                update.sessions[session_id] = session_view(session, "open")
                if self.latest_of.get(session.customer_id) == session_id:
                    update.customers[session.customer_id] = session_id
        return update

    def forget_customers(self, customer_ids: set[str]) -> int:
        """Drop the sessions of erased customers, open or waiting to be learned, and whatever of theirs was
        waiting to be published (never learned, never served again); how many open ones."""
        doomed = [s for s in self.open.values() if s.customer_id in customer_ids]
        for session in doomed:
            self._close_session(session)
        self.maturing = [entry for entry in self.maturing if entry[3].customer_id not in customer_ids]
        heapq.heapify(self.maturing)
        pending = self._update
        pending.sessions = {sid: view for sid, view in pending.sessions.items()
                            if view["customer_id"] not in customer_ids}
        pending.customers = {cid: sid for cid, sid in pending.customers.items() if cid not in customer_ids}
        pending.alerts = [alert for alert in pending.alerts if alert.customer_id not in customer_ids]
        return len(doomed)

    # -- reading ------------------------------------------------------------------

    def roc_auc(self) -> float | None:
        """ROC AUC of the live score at each session's last click, over the last ``metric_window`` ended."""
        labels = {converted for converted, _ in self._labelled}
        return self._auc.get() if len(labels) == 2 else None

    def metrics(self) -> dict[str, Any]:
        auc = self.roc_auc()
        return {**self.counts, "sessions_open": len(self.open), "sessions_learned": self.model.learned,
                "roc_auc": "-" if auc is None else round(auc, 4)}

    def model_view(self, rules: int = 5) -> dict[str, Any]:
        """The model as served: sessions learned and converted, progressive AUC, and its top rules."""
        auc = self.roc_auc()
        return {"learned": self.model.learned, "converted": self.model.converted,
                "roc_auc": None if auc is None else round(auc, 4), "window": self.metric_window,
                "rules": self.model.explain(rules)}

    # -- checkpoint ---------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.STATE[0], "version": self.STATE[1], "classifier": self.model.state_dict(),
                "params": {"timeout": self.timeout, "max_open": self.max_open,
                           "abandon_cart_value": self.abandon_cart_value, "abandon_below": self.abandon_below,
                           "warmup": self.warmup, "metric_window": self.metric_window},
                "open": [session.to_state() for session in self.open.values()],
                "latest_of": self.latest_of, "minute": self.minute, "closing": self._closing,
                "maturing": [[due, sid, seq, session.to_state(), converted]
                             for due, sid, seq, session, converted in sorted(self.maturing, key=lambda e: e[:3])],
                "dirty": list(self.dirty), "changed": list(self.changed), "counts": self.counts,
                "labelled": [list(entry) for entry in self._labelled]}

    @classmethod
    def from_state(cls, state: dict[str, Any], **params: Any) -> SessionTracker:
        """Rebuild from :meth:`state_dict` output; ``params`` override the checkpointed settings."""
        check_state_tag(state, *cls.STATE)
        tracker = cls(ConversionClassifier.from_state(state["classifier"]), **{**state["params"], **params})
        for entry in state["open"]:
            session = LiveSession.from_state(entry)
            tracker.open[session.session_id] = session
            tracker._expiry.append((session.last_click + tracker.timeout, session.session_id))
        heapq.heapify(tracker._expiry)
        tracker.latest_of = dict(state["latest_of"])
        tracker.minute = state["minute"]
        tracker._closing = state.get("closing")
        tracker.maturing = [(due, sid, seq, LiveSession.from_state(s), converted)
                            for due, sid, seq, s, converted in state["maturing"]]
        tracker.dirty = dict.fromkeys(state["dirty"])
        tracker.changed = dict.fromkeys(state["changed"])
        tracker.counts.update(state["counts"])
        for converted, score in state["labelled"]:
            tracker._labelled.append((converted, score))
            tracker._auc.update(converted, score)
        return tracker


def _minute_of(ts: float) -> float:
    return math.floor(ts / MINUTE) * MINUTE


def session_view(session: LiveSession, status: str) -> dict[str, Any]:
    """A session as served (``kairos:session:{id}``)."""
    return {"session_id": session.session_id, "customer_id": session.customer_id, "status": status,
            "propensity": None if session.score is None else round(session.score, 4),
            "clicks": session.views + session.searches + session.carts + session.removes,
            "cart_items": session.cart_items, "cart_value": round(session.cart_value, 2),
            "started": session.started, "last_click": session.last_click}
