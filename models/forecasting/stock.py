"""Stock-out risk: on-hand stock per SKU from inventory counts and orders, hours until it runs out.

:class:`StockBook` keeps, per SKU with inventory, the recent on-hand counts
(``{ts, sku, on_hand}`` records) and the units ordered since the oldest of
them, so the stock on hand at an instant ``t`` is a function of the events
alone: the latest count at or before ``t`` minus the units ordered after it,
up to ``t``. Counts and orders may arrive in any order; a count older than
the latest one applied is kept only while it can still matter (see below) and
never replaces a newer one.

:meth:`StockBook.evaluate` is called at instants of event time (the sales
stage calls it when the watermark closes a window, with the forecaster that
learned it): for each SKU it takes the cumulative demand forecast from that
instant (:meth:`~models.forecasting.forecaster.SalesForecaster.demand`, with
its interval) and finds the hours until the expected demand uses up the stock
(``hours_to_stockout``) and until the **lower bound** of the demand does
(``hours_to_stockout_latest``: the latest plausible stock-out). A ``restock``
alert (:class:`RestockAlert`) is raised when even that comes within
``horizon_hours`` and the forecast is seasonal; one per SKU until its stock
rises again (a restock). A forecaster warming up (a SKU's first season of
sales) extrapolates the hours it has seen so far: its hours are served, not
alerted on (on simulated shops every false alert came from one on the first
day, see BENCHMARKS.md).

Not a River estimator: it learns nothing; it is book-keeping over the
forecasters, which are (:class:`~models.forecasting.forecaster.SalesForecaster`).

Memory: per SKU, the counts newer than the latest one older than
``retain_seconds`` before the last evaluation, and the order lines since the
oldest count kept, a few fields of alert state (about 100 bytes plus 60 per
count or line held); at most ``max_skus`` SKUs (the SKU counted least
recently is dropped first); and, once a first count came, every order line
of the last ``retain_seconds`` (plus the watermark's lag), so that a count
that arrives after orders dated after it still subtracts them. Before the
first count the book holds nothing and looks at no order: the very first
count a book receives does not subtract orders dated after it that came
before it.

>>> book = StockBook(horizon_hours=24.0)
>>> book.add_count({"ts": 0.0, "sku": "A", "on_hand": 30})
>>> book.add_order({"ts": 1800.0, "lines": [{"sku": "A", "quantity": 4, "unit_price": 1.0}]})
>>> book.on_hand("A", 3600.0)
26
>>> class Steady:  # two units an hour, give or take
...     def demand(self, start, steps):
...         return [Forecast(start + 3600.0 * k, 2.0 * (k + 1), 1.5 * (k + 1), 2.5 * (k + 1), "seasonal")
...                 for k in range(steps)]
>>> update = book.evaluate(3600.0, lambda sku: Steady())
>>> view = update.views["A"]
>>> view["on_hand"], view["hours_to_stockout"], round(view["hours_to_stockout_latest"], 2)
(26, 13.0, 17.33)
>>> [alert.sku for alert in update.alerts]
['A']
>>> book.evaluate(7200.0, lambda sku: Steady()).alerts  # one alert until a restock
[]
"""

from __future__ import annotations

import math
from bisect import bisect_right, insort
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import itemgetter
from datetime import datetime, timezone
from typing import Any, Protocol, Self

from models.base import check_state_tag
from models.forecasting.forecaster import SEASONAL, Forecast

_TS = itemgetter(0)


class DemandForecaster(Protocol):
    """What the book needs of a forecaster: cumulative demand from an instant (see ``SalesForecaster.demand``)."""

    def demand(self, start: float, steps: int) -> list[Forecast]: ...


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class RestockAlert:
    """Even the lower bound of the demand forecast runs ``sku`` out of stock within the horizon."""

    sku: str
    #: The event time of the evaluation that raised it.
    ts: float
    on_hand: int
    hours_to_stockout: float | None
    hours_to_stockout_latest: float
    horizon_hours: float
    basis: str

    def reasons(self) -> list[str]:
        """Why, in words."""
        expected = ("" if self.hours_to_stockout is None else
                    f"the forecast sells them in {self.hours_to_stockout:.1f} h "
                    f"(by {_iso(self.ts + self.hours_to_stockout * 3600.0)}); ")
        return [f"SKU {self.sku}: {self.on_hand} units on hand at {_iso(self.ts)}; {expected}even at the lower "
                f"bound of demand they are gone in {self.hours_to_stockout_latest:.1f} h, within the "
                f"{self.horizon_hours:g} h restock horizon ({self.basis} forecast)"]


@dataclass
class StockUpdate:
    """What one :meth:`StockBook.evaluate` produced: a view per SKU evaluated and the alerts raised."""

    views: dict[str, dict[str, Any]] = field(default_factory=dict)
    alerts: list[RestockAlert] = field(default_factory=list)


@dataclass
class _Sku:
    #: Counts as sorted ``[ts, on_hand]``; orders after the first count as sorted ``[ts, units]``.
    counts: list[list[float]] = field(default_factory=list)
    orders: list[list[float]] = field(default_factory=list)
    #: Event time of the alert of the current episode (``None``: none), and the stock it was raised at.
    alerted_at: float | None = None
    alerted_on_hand: float = 0.0


class StockBook:
    """On-hand stock per SKU from counts and orders; hours to stock-out and ``restock`` alerts from a forecast."""

    MODEL = "StockBook"
    VERSION = 1

    def __init__(self, horizon_hours: float = 48.0, lookahead_hours: float = 168.0,
                 retain_seconds: float = 7200.0, max_skus: int = 100_000, window_seconds: float = 3600.0) -> None:
        self.horizon_hours = horizon_hours
        self.window_seconds = window_seconds
        self.lookahead_hours = lookahead_hours
        self.retain_seconds = retain_seconds
        self.max_skus = max_skus
        self._skus: dict[str, _Sku] = {}
        #: Per SKU, every order line of the last ``retain_seconds`` before the last evaluation and after, as sorted
        #: ``[ts, units]``: a SKU's first count, or a count older than its others, takes its lines from here.
        self._recent: dict[str, list[list[float]]] = {}
        #: Set by the first count: until then orders are not looked at (a shop without inventory pays nothing).
        self.active = False
        #: Event time of the last evaluation (``-inf`` before the first).
        self.evaluated = -math.inf
        #: Counts older than every count kept for their SKU (not applied), SKUs dropped for the cap, alerts.
        self.late_counts = 0
        self.dropped_skus = 0
        self.alerts = 0
        #: The last evaluation's view per SKU (what ``kairos:stock:sku:{sku}`` serves): written again into a Redis
        #: that lost its views.
        self.latest: dict[str, dict[str, Any]] = {}

    def __len__(self) -> int:
        return len(self._skus)

    def add_count(self, record: dict[str, Any]) -> None:
        """An inventory count: ``{ts, sku, on_hand}``."""
        sku, ts = record["sku"], float(record["ts"])
        self.active = True
        state = self._skus.get(sku)
        if state is None:
            if len(self._skus) >= self.max_skus:
                self._drop_one()
            state = self._skus[sku] = _Sku()
        elif ts < state.counts[0][0]:
            if ts <= self.evaluated - self.retain_seconds:
                self.late_counts += 1  # older than what decides the stock from here on: never applied over it
                return
            state.orders[:0] = self._recent_lines(sku, ts, state.counts[0][0])
        position = bisect_right(state.counts, [ts, math.inf])
        if position and state.counts[position - 1][0] == ts:
            # Two counts at one instant: the larger wins, whatever the arrival order.
            state.counts[position - 1][1] = max(state.counts[position - 1][1], float(record["on_hand"]))
        else:
            state.counts.insert(position, [ts, float(record["on_hand"])])
        if not state.orders and len(state.counts) == 1:  # a new SKU: the lines ordered after its count so far
            state.orders = self._recent_lines(sku, ts, math.inf)

    def _recent_lines(self, sku: str, after: float, until: float) -> list[list[float]]:
        """The recent order lines of ``sku`` dated in ``(after, until]``, as ``[ts, units]``."""
        lines = self._recent.get(sku, [])
        return [list(line) for line in lines[bisect_right(lines, after, key=_TS):bisect_right(lines, until, key=_TS)]]

    def add_order(self, order: dict[str, Any]) -> None:
        """An order record: its lines of SKUs with a count, dated after their oldest count kept, and every line
        for ``retain_seconds`` (a count that comes after the order subtracts it); nothing before the first count."""
        if not self.active:
            return
        ts = float(order["ts"])
        for line in order["lines"]:
            units = float(line["quantity"])
            if ts > self.evaluated - self.retain_seconds:
                insort(self._recent.setdefault(line["sku"], []), [ts, units])
            state = self._skus.get(line["sku"])
            if state is not None and ts > state.counts[0][0]:
                insort(state.orders, [ts, units])

    def on_hand(self, sku: str, at: float) -> int | None:
        """Units on hand at ``at``: the latest count at or before it, less the units ordered after it up to ``at``
        (never below 0); ``None`` without such a count."""
        state = self._skus.get(sku)
        if state is None:
            return None
        position = bisect_right(state.counts, [at, math.inf])
        if not position:
            return None
        since, units = state.counts[position - 1]
        start = bisect_right(state.orders, [since, math.inf])
        end = bisect_right(state.orders, [at, math.inf])
        sold = sum(units for _, units in state.orders[start:end])
        return max(0, round(units - sold))

    def evaluate(self, at: float, forecaster_of: Callable[[str], DemandForecaster | None]) -> StockUpdate:
        """Views and alerts of every SKU at the instant ``at`` (call with increasing ``at``: every event up to it
        must be in); ``forecaster_of(sku)`` is the SKU's units forecaster, or ``None`` when it has none."""
        update = StockUpdate()
        steps = max(1, math.ceil(self.lookahead_hours * 3600.0 / self.window_seconds))
        for sku in sorted(self._skus):
            units = self.on_hand(sku, at)
            if units is None:
                continue
            state = self._skus[sku]
            view: dict[str, Any] = {"sku": sku, "on_hand": units, "as_of": at, "horizon_hours": self.horizon_hours}
            count_ts = state.counts[bisect_right(state.counts, [at, math.inf]) - 1][0]
            view["counted_at"] = count_ts
            if state.alerted_at is not None and units > state.alerted_on_hand:
                state.alerted_at = None  # restocked: a new episode
            forecaster = forecaster_of(sku)
            demand = [] if forecaster is None else forecaster.demand(at, steps)
            if not demand:
                view["basis"] = "no-forecast"
            else:
                view["basis"] = demand[0].basis
                expected = _crossing(at, demand, units, "value", self.window_seconds)
                latest = _crossing(at, demand, units, "lower", self.window_seconds)
                if expected is not None:
                    view["hours_to_stockout"] = expected
                if latest is not None:
                    view["hours_to_stockout_latest"] = latest
                if (latest is not None and latest <= self.horizon_hours and state.alerted_at is None
                        and view["basis"] == SEASONAL):
                    state.alerted_at, state.alerted_on_hand = at, units
                    update.alerts.append(RestockAlert(sku, at, units, expected, latest, self.horizon_hours,
                                                      view["basis"]))
            view["alerted_at"] = state.alerted_at
            update.views[sku] = view
        self.alerts += len(update.alerts)
        self.latest = dict(update.views)
        self.forget_until(at)
        return update

    def forget_until(self, at: float) -> None:
        """Mark event time ``at`` evaluated and drop what no count or order from there on needs (what
        :meth:`evaluate` does after its views; called alone while no SKU has a count)."""
        self.evaluated = at
        self._prune(at - self.retain_seconds)
        before = at - self.retain_seconds
        for sku, lines in list(self._recent.items()):
            del lines[:bisect_right(lines, before, key=_TS)]
            if not lines:
                del self._recent[sku]

    def _prune(self, before: float) -> None:
        """Keep, per SKU, the latest count at or before ``before`` and everything after it (with the orders)."""
        for state in self._skus.values():
            keep = bisect_right(state.counts, [before, math.inf]) - 1
            if keep > 0:
                del state.counts[:keep]
                cut = bisect_right(state.orders, [state.counts[0][0], math.inf])
                del state.orders[:cut]

    def _drop_one(self) -> None:
        oldest = min(self._skus, key=lambda sku: (self._skus[sku].counts[-1][0] if self._skus[sku].counts
                                                  else -math.inf, sku))
        del self._skus[oldest]
        self.dropped_skus += 1

    def metrics(self) -> dict[str, float]:
        """Counts for ``kairos:metrics:stock``."""
        return {"skus": len(self._skus), "late_counts": self.late_counts, "dropped_skus": self.dropped_skus,
                "alerts": self.alerts, "evaluated": self.evaluated if self.evaluated > -math.inf else 0.0,
                "held_orders": sum(len(s.orders) for s in self._skus.values()),
                "recent_lines": sum(map(len, self._recent.values()))}

    def state_dict(self) -> dict[str, Any]:
        """Plain-data checkpoint."""
        skus = {sku: {"counts": s.counts, "orders": s.orders, "alerted_at": s.alerted_at,
                      "alerted_on_hand": s.alerted_on_hand} for sku, s in sorted(self._skus.items())}
        return {"model": self.MODEL, "version": self.VERSION, "horizon_hours": self.horizon_hours,
                "lookahead_hours": self.lookahead_hours, "retain_seconds": self.retain_seconds,
                "max_skus": self.max_skus, "window_seconds": self.window_seconds,
                "evaluated": self.evaluated if self.evaluated > -math.inf else None,
                "late_counts": self.late_counts, "dropped_skus": self.dropped_skus, "alerts": self.alerts,
                "recent": dict(sorted(self._recent.items())), "active": self.active, "skus": skus,
                "latest": dict(sorted(self.latest.items()))}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """Rebuild from :meth:`state_dict` output."""
        check_state_tag(state, cls.MODEL, cls.VERSION)
        book = cls(state["horizon_hours"], state["lookahead_hours"], state["retain_seconds"], state["max_skus"],
                   state["window_seconds"])
        book.evaluated = -math.inf if state["evaluated"] is None else state["evaluated"]
        book.late_counts, book.dropped_skus, book.alerts = state["late_counts"], state["dropped_skus"], state["alerts"]
        book._recent = {sku: [list(line) for line in lines] for sku, lines in state["recent"].items()}
        book.active = state["active"]
        book.latest = dict(state.get("latest", {}))  # absent before it: the next evaluation fills it
        book._skus = {sku: _Sku([list(c) for c in s["counts"]], [list(o) for o in s["orders"]], s["alerted_at"],
                                s["alerted_on_hand"]) for sku, s in state["skus"].items()}
        return book


def _crossing(at: float, demand: list[Forecast], units: float, bound: str, window: float) -> float | None:
    """Hours from ``at`` until the cumulative ``bound`` (``value`` or ``lower``) of ``demand`` reaches ``units``
    (linear within a window); 0 when nothing is left, ``None`` when not within the forecast."""
    if units <= 0:
        return 0.0
    before, start = 0.0, at
    for step in demand:
        total = getattr(step, bound)
        end = step.window_start + window
        if total >= units:
            share = (units - before) / (total - before) if total > before else 1.0
            return round((start + share * (end - start) - at) / 3600.0, 4)
        before, start = total, end
    return None
