"""Per-minute traffic counts in event time, one detector per scope, anomaly episodes and their alerts.

Not a River estimator (it holds many): it counts traffic records into
one-minute event-time buckets per scope, closes a minute once the watermark
has passed its end plus the allowed lateness, scores and learns each closed
minute with that scope's :class:`~models.anomaly.detector.TrafficAnomalyDetector`,
and groups anomalous minutes into episodes (one alert per episode, raised at
its first minute). The result depends only on the records and the watermarks
given, never on how the records were batched.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from models.anomaly.detector import COUNTERS, SIGNALS, Moved, TrafficAnomalyDetector
from models.base import check_state_tag

MINUTE = 60.0
#: Counters each scope kind carries (a category has clicks only; dead letters carry no fields: shop-wide only).
SCOPE_COUNTERS: dict[str, tuple[str, ...]] = {
    "all": COUNTERS,
    "category": ("views", "carts"),
    "country": ("orders", "payments", "declined", "failed", "new_devices"),
    "method": ("payments", "declined", "failed", "new_devices"),
}
#: Longest scope value kept (values come from the events).
MAX_SCOPE_VALUE = 64
#: Most record kinds whose scopes and counters are memoised.
MAX_ROUTES = 4096
#: The payment status counted as declined (the issuer's answer), and as failed (the gateway's); version 1 of the
#: detector counted both as declined.
DECLINED = "declined"
FAILED = "failed"


@dataclass(frozen=True)
class AnomalyAlert:
    """One anomaly episode's alert: the scope, the minute it started and the signals that moved."""

    scope: str
    minute: float
    score: float
    moved: tuple[Moved, ...]

    def reasons(self) -> list[str]:
        return [move.text() for move in self.moved]


@dataclass
class TrafficUpdate:
    """What closing minutes produced: the latest minute's view per scope, and the alerts raised."""

    views: dict[str, dict[str, Any]] = field(default_factory=dict)
    alerts: list[AnomalyAlert] = field(default_factory=list)
    closed: int = 0
    #: More minutes are due than this advance's budget closed (the next call goes on).
    pending: bool = False

    @property
    def publishable(self) -> bool:
        """Whether it changed anything served: minutes closed or alerts."""
        return bool(self.closed or self.alerts)


def scopes_of(record: dict[str, Any], kinds: Iterable[str]) -> list[str]:
    """The scopes (``kind:value``) a traffic record counts in, among the enabled ``kinds``.

    >>> scopes_of({"kind": "payment", "method": "card", "country": "DE"}, ["all", "country", "method"])
    ['all:all', 'country:DE', 'method:card']
    """
    found = ["all:all"] if "all" in kinds else []
    for kind in ("category", "country", "method"):
        value = record.get(kind)
        if kind in kinds and isinstance(value, str) and value:
            found.append(f"{kind}:{value[:MAX_SCOPE_VALUE]}")
    return found


def counters_of(record: dict[str, Any]) -> list[str]:
    """The counters one traffic record adds 1 to: a payment the issuer declined counts as ``declined``, one the
    gateway failed as ``failed`` (two signals: see :class:`~models.anomaly.detector.TrafficAnomalyDetector`).

    >>> counters_of({"kind": "payment", "status": "failed", "new_device": True})
    ['events', 'payments', 'failed', 'new_devices']
    >>> counters_of({"kind": "payment", "status": "declined"}), counters_of({"kind": "dead"})
    (['events', 'payments', 'declined'], ['dead', 'events'])
    """
    kind = record.get("kind")
    if kind == "dead":
        return ["dead", "events"]
    found = ["events"]
    if kind == "view":
        found.append("views")
    elif kind == "cart":
        found.append("carts")
    elif kind == "order":
        found.append("orders")
    elif kind == "payment":
        found.append("payments")
        status = record.get("status")
        if status == DECLINED:
            found.append("declined")
        elif status == FAILED:
            found.append("failed")
        if record.get("new_device"):
            found.append("new_devices")
    return found


class TrafficMonitor:
    """Minute buckets per scope, closed by the event-time watermark, scored by one detector per scope.

    ``add`` counts a record (``{"ts", "kind": view|cart|order|payment|dead,
    "category", "country", "method", "status", "new_device"}``) into its
    minute, unless that minute is closed (``late``); ``advance(watermark)``
    closes every minute whose end plus ``allowed_lateness`` the watermark has
    passed, in order, gaps included (a minute without events is a minute of
    zeros: a checkout that stopped is such a minute), but beyond its first
    ``max_quiet`` minutes a silence is skipped. Each closed minute is scored and learned
    by each known scope's detector; an anomalous minute in which a signal
    moved that had not moved in the scope for more than ``episode_gap``
    minutes opens an episode and raises an :class:`AnomalyAlert` (a minute
    of the same episode raises none; a second incident moving other signals
    does).

    Memory: at most ``max_scopes`` scopes (further ones are counted in
    ``scopes_refused``), each a detector (~6 KB), its first minute, an episode time per signal
    and, per open minute, a dict of at most nine counters. Minutes stay open
    until the watermark passes them: as many as the slowest upstream path lags
    behind the fastest (the ingest's event-time alignment keeps that to
    seconds; a path held back for hours holds that many minutes).

    >>> monitor = TrafficMonitor(scopes=("all",), detector={"warmup": 30})
    >>> for minute in range(90):
    ...     for second in range(60):
    ...         monitor.add({"ts": minute * 60.0 + second, "kind": "view" if second % 3 else "cart"})
    ...     for second in range(0, 60, 8):
    ...         monitor.add({"ts": minute * 60.0 + second, "kind": "order"})
    >>> monitor.advance(90 * 60.0).alerts
    []
    >>> for minute in range(90, 96):  # the checkout breaks: carts as usual, no orders
    ...     for second in range(60):
    ...         monitor.add({"ts": minute * 60.0 + second, "kind": "view" if second % 3 else "cart"})
    >>> alert = monitor.advance(96 * 60.0).alerts[0]
    >>> alert.scope, alert.minute / 60
    ('all:all', 91.0)
    >>> alert.reasons()[0]
    'conversion_rate 0 over the last 2 minutes against a usual 0.4 (-5.7 sd)'
    """

    STATE = ("TrafficMonitor", 1)

    def __init__(self, scopes: Iterable[str] = ("all", "category", "country", "method"),
                 allowed_lateness: float = 30.0, max_scopes: int = 256, episode_gap: int = 10,
                 max_quiet: int = 60, detector: dict[str, Any] | None = None,
                 scope_threshold: float | None = None) -> None:
        self.scopes = tuple(scopes)
        self.allowed_lateness = allowed_lateness
        self.max_scopes = max_scopes
        self.episode_gap = episode_gap
        self.max_quiet = max_quiet
        self.detector_params = dict(detector or {})
        #: The threshold of the category/country/method scopes (default: the shop-wide one); their counts are
        #: smaller and more bursty, so they may need a higher one.
        self.scope_threshold = scope_threshold
        self.detectors: dict[str, TrafficAnomalyDetector] = {}
        #: Per scope, the first minute it had a record in: its detector learns from that minute on, whenever its
        #: first record came (a scope admitted while older minutes were still open must not learn them as
        #: silent, or its usual values would depend on how far the watermark was when its first record came).
        self.first_minute: dict[str, float] = {}
        #: Open minutes: minute start -> scope -> counter -> count.
        self.open: dict[float, dict[str, dict[str, int]]] = {}
        #: Start of the next minute to close (None before the first record).
        self.next_minute: float | None = None
        #: Minutes without any record closed or skipped since the last one with records.
        self.quiet = 0
        #: The highest watermark an advance was given: minutes it has passed close (within the advances'
        #: budgets) and take no more records, closed yet or not.
        self.target = -math.inf
        #: Per scope and signal (``scope|signal``), the last minute the signal moved beyond the threshold.
        self.last_anomalous: dict[str, float] = {}
        #: Per scope, the latest closed minute's view.
        self.latest: dict[str, dict[str, Any]] = {}
        self._route_cache: dict[tuple, list[tuple[str, list[str]]]] = {}
        #: Per scope, the last minute closed by the advance under way: (minute, score, anomalous, counts).
        self._closed: dict[str, tuple[float, float, bool, dict[str, int]]] = {}
        self.counts = {"records": 0, "late": 0, "scopes_refused": 0, "minutes_closed": 0, "minutes_skipped": 0,
                       "alerts": 0}

    def add(self, record: dict[str, Any]) -> None:
        """Count one traffic record into its minute (a record of a closed minute only counts as ``late``)."""
        ts = record["ts"]
        minute = math.floor(ts / MINUTE) * MINUTE
        if minute + MINUTE + self.allowed_lateness <= self.target:
            self.counts["late"] += 1  # the watermark passed its minute (closed, or closing within the budgets)
            return
        if self.next_minute is None or minute < self.next_minute:
            # The first record, or one older than every record so far that no watermark has passed: minutes
            # close from the oldest, whichever path was heard first (a minute before ``next_minute`` that the
            # watermark has not passed cannot have closed: ``next_minute`` only moves past minutes it passed).
            self.next_minute = minute
        self.counts["records"] += 1
        buckets = self.open.get(minute)
        if buckets is None:
            buckets = self.open[minute] = {}
        for scope, counters in self._routes(record):
            bucket = buckets.get(scope)
            if bucket is None:
                if scope not in self.detectors and not self._admit(scope):
                    continue
                bucket = buckets[scope] = {}
                if minute < self.first_minute.get(scope, math.inf):
                    self.first_minute[scope] = minute
            for counter in counters:
                bucket[counter] = bucket.get(counter, 0) + 1

    def _routes(self, record: dict[str, Any]) -> list[tuple[str, list[str]]]:
        """Each scope a record counts in, with the counters it adds to there (memoised per kind of record: a few
        hundred kinds, bounded by :data:`MAX_ROUTES`)."""
        status = record.get("status")
        signature = (record.get("kind"), record.get("category"), record.get("country"), record.get("method"),
                     status if status in (DECLINED, FAILED) else None, bool(record.get("new_device")))
        routes = self._route_cache.get(signature)
        if routes is None:
            counters = counters_of(record)
            routes = [(scope, [c for c in counters if c in SCOPE_COUNTERS[scope.split(":", 1)[0]]])
                      for scope in scopes_of(record, self.scopes)]
            if len(self._route_cache) < MAX_ROUTES:
                self._route_cache[signature] = routes
        return routes

    def _admit(self, scope: str) -> bool:
        if len(self.detectors) >= self.max_scopes:
            self.counts["scopes_refused"] += 1
            return False
        params = dict(self.detector_params)
        if self.scope_threshold is not None and scope != "all:all":
            params["threshold"] = self.scope_threshold  # for every signal of the scope
            params.pop("signal_thresholds", None)
        self.detectors[scope] = TrafficAnomalyDetector(**params)
        return True

    def advance(self, watermark: float, budget: int | None = None) -> TrafficUpdate:
        """Close the minutes the watermark has passed (end + allowed lateness), oldest first.

        A silence (minutes without any record) is closed minute by minute for its first ``max_quiet`` minutes
        (they teach the detectors that traffic fell), and the rest of it is skipped: a shop silent for a day, or a
        replay jumping a month, costs no scoring. The count of quiet minutes is kept in the state, so where a
        silence is cut does not depend on how often ``advance`` is called.

        ``budget`` bounds the minutes scored by this call (a backfill's last days can hold thousands of sparse
        minutes, seconds of scoring); the rest are left for the next calls, which go on towards the highest
        watermark given so far (``update.pending`` says some are due). A record of a minute that watermark has
        passed is late whether its minute is closed yet or not, so where the budget cuts never changes a result.
        """
        update = TrafficUpdate()
        if watermark > self.target:
            self.target = watermark
        if self.next_minute is None:
            return update
        while self.next_minute + MINUTE + self.allowed_lateness <= self.target:
            if budget is not None and update.closed >= budget:
                update.pending = True
                break
            minute = self.next_minute
            buckets = self.open.pop(minute, None)
            self.next_minute = minute + MINUTE
            if buckets is None:
                self.quiet += 1
                if self.quiet > self.max_quiet:
                    self.counts["minutes_skipped"] += 1
                    continue
            else:
                self.quiet = 0
            self._close(minute, buckets or {}, update)
        self._views(update)
        return update

    def _close(self, minute: float, buckets: dict[str, dict[str, int]], update: TrafficUpdate) -> None:
        update.closed += 1
        self.counts["minutes_closed"] += 1
        empty: dict[str, int] = {}
        first_minute = self.first_minute
        for scope in sorted(self.detectors):
            if first_minute.get(scope, -math.inf) > minute:
                continue  # not born yet in event time
            detector = self.detectors[scope]
            counts = buckets.get(scope, empty)
            x = {counter: counts.get(counter, 0) for counter in SCOPE_COUNTERS[scope.split(":", 1)[0]]}
            score, moved = detector.observe(x)
            if moved:
                # A new episode for a signal quiet for more than episode_gap minutes in this scope.
                fresh = False
                for move in moved:
                    key = f"{scope}|{move.signal}"
                    last = self.last_anomalous.get(key)
                    fresh = fresh or last is None or minute - last > self.episode_gap * MINUTE
                    self.last_anomalous[key] = minute
                if fresh:
                    update.alerts.append(AnomalyAlert(scope, minute, score, tuple(moved)))
                    self.counts["alerts"] += 1
            # The view is built once per advance, from the last minute closed (see _views).
            self._closed[scope] = (minute, score, bool(moved), x)

    def _views(self, update: TrafficUpdate) -> None:
        """Each scope's view of the last minute closed by this advance: its counts, score, and the usual values
        (as learned up to that minute)."""
        for scope, (minute, score, moved, x) in self._closed.items():
            view = {"minute": minute, "score": round(score, 3), "anomalous": int(moved),
                    **{f"count_{name}": value for name, value in x.items()},
                    **{f"usual_{name}": round(value, 6) for name, value in self.detectors[scope].usual().items()}}
            self.latest[scope] = view
            update.views[scope] = view
        self._closed.clear()

    def views(self) -> TrafficUpdate:
        """Every scope's latest minute as served now, as an update without alerts: for a Redis that lost its views."""
        return TrafficUpdate(views=dict(self.latest))

    def metrics(self) -> dict[str, float]:
        return {**self.counts, "scopes": len(self.detectors), "open_minutes": len(self.open),
                "anomalous_minutes": sum(d.anomalous for d in self.detectors.values())}

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.STATE[0], "version": self.STATE[1],
            "params": {"scopes": list(self.scopes), "allowed_lateness": self.allowed_lateness,
                       "max_scopes": self.max_scopes, "episode_gap": self.episode_gap, "max_quiet": self.max_quiet,
                       "detector": self.detector_params, "scope_threshold": self.scope_threshold},
            "detectors": {scope: d.state_dict() for scope, d in sorted(self.detectors.items())},
            "first_minute": dict(sorted(self.first_minute.items())),
            "open": [[minute, buckets] for minute, buckets in sorted(self.open.items())],
            "next_minute": self.next_minute, "quiet": self.quiet,
            "target": self.target if math.isfinite(self.target) else None,
            "last_anomalous": dict(sorted(self.last_anomalous.items())),
            "latest": dict(sorted(self.latest.items())), "counts": dict(self.counts),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TrafficMonitor:
        check_state_tag(state, *cls.STATE)
        monitor = cls(**state["params"])
        monitor.detectors = {scope: TrafficAnomalyDetector.from_state(d) for scope, d in state["detectors"].items()}
        # Absent from checkpoints before it: their detectors learn every minute closed from now on, as they did.
        monitor.first_minute = dict(state.get("first_minute", {}))
        monitor.open = {float(minute): buckets for minute, buckets in state["open"]}
        monitor.next_minute = state["next_minute"]
        monitor.quiet = state["quiet"]
        target = state.get("target")  # absent before budgets: the last advance closed everything it passed
        monitor.target = -math.inf if target is None else target
        monitor.last_anomalous = dict(state["last_anomalous"])
        monitor.latest = dict(state["latest"])
        monitor.counts.update(state["counts"])
        return monitor


__all__ = ["AnomalyAlert", "SIGNALS", "TrafficMonitor", "TrafficUpdate", "counters_of", "scopes_of"]
