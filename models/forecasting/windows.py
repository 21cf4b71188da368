"""Tumbling sales windows in event time, per category, per top SKU and in total."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Self

from models.base import check_state_tag
from models.forecasting.window_calendar import WindowCalendar
from models.forecasting.top_skus import TopSkus

#: Series names are ``{scope}:{key}``: the shop total, one category, one top SKU.
TOTAL = "total:all"
CATEGORY = "category:"
SKU = "sku:"
#: Category of order lines that carry none.
UNCATEGORIZED = "uncategorized"
#: Sums are kept in millionths, as integers, so they do not depend on the order of additions.
_MICROS = 1_000_000
#: Empty windows of a silence one :meth:`SalesWindows.advance` closes by default: a week of hourly windows.
MAX_QUIET = 7 * 24


def _micros(value: float) -> int:
    return round(value * _MICROS)


@dataclass(frozen=True)
class WindowSales:
    """Sales of one series in one window: final once the window closed, so far while it is open."""

    series: str
    start: float
    end: float
    units: float
    revenue: float
    #: Order lines: how many times the series was bought, whatever the quantities.
    lines: int
    #: Orders that bought from the series: the number of purchases (several lines of one order count once).
    orders: int
    #: Product views of the series (its SKU, a SKU of its category, any SKU for the total): the interest.
    views: int = 0


@dataclass(frozen=True)
class LateCorrection:
    """Sales that arrived after their window had closed: to be added to that window's actuals."""

    series: str
    start: float
    units: float
    revenue: float
    lines: int
    orders: int


class SalesWindows:
    """Units, revenue, order lines, orders and views per series in tumbling event-time windows, with allowed lateness.

    A window ``[start, end)`` closes when the watermark reaches ``end +
    allowed_lateness``; the watermark is the largest event time seen, or the
    one passed to :meth:`advance` (a stream-wide watermark, or wall-clock time
    so that quiet hours close too). :meth:`advance` returns every closed window
    of every known series in time order, **including empty ones**: a series
    that sold nothing in an hour has an actual of 0 for that hour. While a
    window is open, :meth:`open_sales` gives its sales so far and
    :meth:`take_fresh` the series that sold since it was last called (to
    watch the windows as they fill; views alone do not make a series fresh).

    **Late events** (their window already closed) are never put into a window:
    they are counted in ``late`` and :meth:`add` returns a
    :class:`LateCorrection`. Policy: the consumer corrects that window's
    actuals in the view; forecasters are not retrained and errors and alerts
    are not revised.

    **Series**: ``total:all``, ``category:{name}`` for every category seen
    (lines without one count as ``uncategorized``) and ``sku:{sku}`` for the
    ``top_skus`` best sellers by units (:class:`TopSkus`). A category series
    starts at the first window it sold in. SKUs are ranked as windows close:
    each open window keeps every SKU's sales and views (``sku_cells``), and a
    closing window feeds its SKUs' units to the summary in SKU order, so the
    top depends on the events only, not on the order they arrived in. A SKU
    that enters the top gets a series from the next window on, with what that
    window and the later open ones already hold; a SKU leaving the top loses
    its series (see :attr:`series`) and is listed in :attr:`departed`.
    An order counts once in ``orders`` of every series it bought from, and
    once per line in ``lines``.

    **Views** (:meth:`add_view`, a product view click) count in ``views`` of
    the total, the SKU's category and the SKU's series when it has one; they
    do not rank SKUs (units do) and do not move the event time: a click
    carries the shopper's device clock, and one dated in the future must not
    close every window (quiet hours close by the orders' event time or the
    watermark passed to :meth:`advance`, as before views were counted). A
    late view is dropped and counted in ``late_views`` (views are not shown
    in the actuals, so there is nothing to correct).

    **Exact and order-independent**: sums are kept as integers in millionths,
    so feeding the same events in any order, each before its window closes,
    gives the same closed windows for every series, the top SKUs included.

    **Silences** (no sale or view in any series): one :meth:`advance` closes
    the first ``max_quiet`` windows of a silence (a week of hourly windows by
    default) and skips the rest, so its work does not grow with the time
    between two events: an order dated 2099 after ones of 2026 closes a week
    of empty windows per series, not 73 years of them (640,000 per series,
    which took a worker from 164 MB to 4.9 GB). Advanced once per window (by
    a clock), a silence closes every window.

    Memory: open windows per series at most ``allowed_lateness / size + 2``
    while :meth:`advance` is called at least once per window; series: the
    total, the categories (few) and at most ``top_skus`` SKUs; plus the
    summary's ``10 x top_skus`` counters and, per open window, a cell per SKU
    sold or viewed in it, and the SKU series that left the top in the last
    advance. One advance closes, per series, the
    windows with sales or views and at most ``max_quiet`` empty ones after each.

    >>> windows = SalesWindows(size=60.0, allowed_lateness=30.0)
    >>> lines = [{"sku": "A", "quantity": 2, "unit_price": 9.5, "category": "toys"},
    ...          {"sku": "B", "quantity": 1, "unit_price": 4.0, "category": "toys"}]
    >>> windows.add_order({"ts": 5.0, "lines": lines})
    []
    >>> windows.advance(89.0)  # the window [0, 60) waits for late events until 90
    []
    >>> [(w.start, w.units, w.lines, w.orders) for w in windows.open_sales("category:toys")]  # so far
    [(0.0, 3.0, 2, 1), (60.0, 0.0, 0, 0)]
    >>> [(w.series, w.start, w.units, w.revenue, w.lines, w.orders) for w in windows.advance(90.0)]
    [('category:toys', 0.0, 3.0, 23.0, 2, 1), ('total:all', 0.0, 3.0, 23.0, 2, 1)]
    >>> [c.series for c in windows.add_order({"ts": 59.0, "lines": [{"sku": "C", "quantity": 1, "unit_price": 4.0}]})]
    ['total:all', 'category:uncategorized']
    >>> windows.late
    1
    >>> windows.add_view({"ts": 100.0, "sku": "A", "category": "toys"})
    >>> [(w.series, w.views) for w in windows.open_sales("category:toys")]
    [('category:toys', 1)]
    >>> quiet = SalesWindows(size=60.0, max_quiet=3)
    >>> quiet.add_order({"ts": 5.0, "lines": lines})
    []
    >>> quiet.add_order({"ts": 4.1e9, "lines": lines})  # dated 2099
    []
    >>> sorted({w.start for w in quiet.advance()})  # [0, 60) and three quiet windows; 68 million more skipped
    [0.0, 60.0, 120.0, 180.0]
    """

    MODEL = "SalesWindows"
    VERSION = 4

    def __init__(
        self, size: float, allowed_lateness: float = 0.0, top_skus: int = 50, origin: float = 0.0,
        max_quiet: int = MAX_QUIET,
    ) -> None:
        if allowed_lateness < 0 or max_quiet < 0:
            raise ValueError("allowed_lateness and max_quiet must not be negative")
        self.calendar = WindowCalendar(size, origin=origin)
        self.allowed_lateness = allowed_lateness
        #: Empty windows of a silence one :meth:`advance` closes; it skips the rest.
        self.max_quiet = max_quiet
        self.top = TopSkus(top_skus)
        #: Events that arrived after their window had closed.
        self.late = 0
        #: Views that arrived after their window had closed (dropped).
        self.late_views = 0
        # series -> window index -> [units, revenue] in millionths, lines, orders, views
        self._open: dict[str, dict[int, list[int]]] = {}
        # series -> index of its first window not yet closed
        self._first_open: dict[str, int] = {}
        # SKU series -> index of its first window: earlier sales are not its to count
        self._sku_start: dict[str, int] = {}
        # open window index -> SKU -> [units, revenue] in millionths, lines, orders, views (ranked at close)
        self._sku_cells: dict[int, dict[str, list[int]]] = {}
        # series that sold in an open window since the last take_fresh()
        self._fresh: set[str] = set()
        #: SKU series that left the top during the last :meth:`advance`, as ``(start, series)``: ``start`` is the
        #: window they left at (their windows from there on were not closed). Not checkpointed: read it after
        #: each advance (:class:`SalesMonitor` forgets their forecasters there, so one re-entering the top
        #: within the same advance starts afresh, as it would had each window been closed by its own advance).
        self.departed: list[tuple[float, str]] = []
        # every window below this index is closed (None before the first advance)
        self._closed_below: int | None = None
        self._max_ts: float | None = None
        self.watermark: float | None = None

    @property
    def order_time(self) -> float | None:
        """The latest event time of any order counted (views do not move it): what :meth:`advance` defaults to."""
        return self._max_ts

    @property
    def series(self) -> list[str]:
        """Every series currently tracked, sorted."""
        return sorted(self._first_open)

    @property
    def open_windows(self) -> int:
        """Windows currently open, over all series (the memory the lateness costs)."""
        return sum(len(windows) for windows in self._open.values())

    def add(self, series: str, ts: float, units: float, revenue: float, lines: int = 1) -> LateCorrection | None:
        """Count one order's sales of ``series`` at event time ``ts``; a late one is returned as a correction."""
        correction = self._count(series, ts, [_micros(units), _micros(revenue), lines, 1, 0])
        self.late += correction is not None
        return correction

    def add_view(self, view: dict[str, Any]) -> None:
        """Count a product view (``ts``, ``sku``, optional ``category``) in the total, its category and its SKU."""
        ts, sku = view["ts"], view["sku"]
        names = [TOTAL, CATEGORY + (view.get("category") or UNCATEGORIZED)]
        if SKU + sku in self._sku_start:
            names.append(SKU + sku)
        late = [self._count(name, ts, [0, 0, 0, 0, 1]) for name in names]
        if late[0] is None:
            self._sku_cell(ts, sku)[4] += 1
        self.late_views += any(c is not None for c in late)

    def add_order(self, order: dict[str, Any]) -> list[LateCorrection]:
        """Count an order record's lines in the total, their categories and the top SKUs.

        A late order counts once in ``late`` and returns a correction per series it touched.
        """
        ts = order["ts"]
        sales: dict[str, list[int]] = {}
        skus: dict[str, list[int]] = {}
        for line in order["lines"]:
            sku = line["sku"]
            sale = [_micros(line["quantity"]), _micros(line["quantity"] * line["unit_price"]), 1]
            names = [TOTAL, CATEGORY + line.get("category", UNCATEGORIZED)]
            if SKU + sku in self._sku_start:
                names.append(SKU + sku)
            for cell in [sales.setdefault(name, [0, 0, 0]) for name in names] + [skus.setdefault(sku, [0, 0, 0])]:
                for i, value in enumerate(sale):
                    cell[i] += value
        corrections = [self._count(series, ts, [*cell, 1, 0]) for series, cell in sales.items()]
        if corrections[0] is None:  # in an open window: ranked when it closes
            for sku, (units, revenue, lines) in skus.items():
                cell = self._sku_cell(ts, sku)
                cell[0] += units
                cell[1] += revenue
                cell[2] += lines
                cell[3] += 1
        late = [c for c in corrections if c is not None]
        self.late += bool(late)
        return late

    def _sku_cell(self, ts: float, sku: str) -> list[int]:
        return self._sku_cells.setdefault(self.calendar.index_of(ts), {}).setdefault(sku, [0, 0, 0, 0, 0])

    def _rank(self, index: int) -> None:
        """Feed closing window ``index``'s SKUs to the top (in SKU order); give a SKU entering it a series.

        The entering SKU's series starts with the next window, holding what the open windows already counted of it.
        """
        cells = self._sku_cells.pop(index, {})
        for sku in sorted(cells):
            units = cells[sku][0]
            if not units:
                continue
            was_top = sku in self.top
            for gone in self.top.add(sku, units / _MICROS):
                self.departed.append((self.calendar.start(index), SKU + gone))
                for table in (self._open, self._first_open, self._sku_start):
                    table.pop(SKU + gone, None)
                self._fresh.discard(SKU + gone)
            if sku in self.top and not was_top:
                series = SKU + sku
                self._first_open[series] = self._sku_start[series] = index + 1
                later = {i: list(c[sku]) for i, c in self._sku_cells.items() if i > index and sku in c}
                if later:
                    self._open[series] = later
                    if any(cell[3] for cell in later.values()):
                        self._fresh.add(series)

    def _count(self, series: str, ts: float, sale: list[int]) -> LateCorrection | None:
        """Add ``[units, revenue]`` in millionths, lines, orders and views to the open window of ``ts``.

        Returns the correction of a closed window instead.
        """
        units, revenue, lines, orders, _ = sale
        if orders:
            self._max_ts = ts if self._max_ts is None else max(self._max_ts, ts)
        index = self.calendar.index_of(ts)
        if index < self._sku_start.get(series, index):
            return None
        if self._closed_below is not None and index < self._closed_below:
            start = self.calendar.start(index)
            return LateCorrection(series, start, units / _MICROS, revenue / _MICROS, lines, orders)
        first = self._first_open.get(series)
        if first is None or index < first:
            self._first_open[series] = index
        cell = self._open.setdefault(series, {}).setdefault(index, [0, 0, 0, 0, 0])
        for i, value in enumerate(sale):
            cell[i] += value
        if orders:
            self._fresh.add(series)
        return None

    def _window(self, series: str, index: int, cell: list[int] | tuple[int, ...]) -> WindowSales:
        start = self.calendar.start(index)
        units, revenue, lines, orders, views = cell
        return WindowSales(series, start, start + self.calendar.size, units / _MICROS, revenue / _MICROS, lines, orders,
                           views)

    def advance(self, watermark: float | None = None) -> list[WindowSales]:
        """Close every window the watermark has passed; return them ordered by start, then series.

        ``watermark`` defaults to the largest event time seen; it never moves back; ``-inf`` closes nothing.
        """
        self.departed = []
        mark = self._max_ts if watermark is None else watermark
        if mark is None or mark == -math.inf:
            return []
        self.watermark = mark if self.watermark is None else max(self.watermark, mark)
        # Window k is closed once start(k + 1) + allowed_lateness <= watermark.
        closed_below = self.calendar.index_of(self.watermark - self.allowed_lateness)
        if self._closed_below is not None and closed_below <= self._closed_below:
            return []
        closed: list[WindowSales] = []
        # Window by window, as if each had its own advance: its SKUs are ranked, then every series' window closes
        # (so the top, and which SKU series a window has, do not depend on how many windows one advance closes).
        for index in self._closing(closed_below):
            if index in self._sku_cells:
                self._rank(index)
            for series, first in self._first_open.items():
                if index >= first:
                    closed.append(self._window(series, index, self._open.get(series, {}).pop(index, (0, 0, 0, 0, 0))))
        for index in sorted(index for index in self._sku_cells if index < closed_below):
            self._rank(index)
        for series, first in self._first_open.items():
            self._first_open[series] = max(first, closed_below)
        self._closed_below = closed_below
        closed.sort(key=lambda w: (w.start, w.series))
        return closed

    def _closing(self, closed_below: int) -> list[int]:
        """The windows below ``closed_below`` to close: each with sales or views, and up to ``max_quiet`` after each.

        The quiet ones follow the last window closed before (or, at the first advance, the first window opened).
        """
        busy = sorted({index for windows in self._open.values() for index in windows if index < closed_below})
        after = self._closed_below
        if after is None:
            after = min(self._first_open.values(), default=closed_below)
        closing: list[int] = []
        for index in busy:
            closing += range(after, min(index, after + self.max_quiet))
            closing.append(index)
            after = index + 1
        return closing + list(range(after, min(closed_below, after + self.max_quiet)))

    def open_sales(self, series: str) -> list[WindowSales]:
        """Sales so far of ``series`` in each window not yet closed, up to the one holding the watermark."""
        first = self._first_open.get(series)
        if first is None or self.watermark is None:
            return []
        windows = self._open.get(series, {})
        last = self.calendar.index_of(self.watermark)
        return [self._window(series, index, windows.get(index, (0, 0, 0, 0, 0))) for index in range(first, last + 1)]

    def take_fresh(self) -> list[str]:
        """The series that sold in an open window since the last call, sorted; forgets them."""
        fresh = sorted(self._fresh)
        self._fresh.clear()
        return fresh

    def state_dict(self) -> dict[str, Any]:
        """Plain-data checkpoint: parameters, open windows, watermark, late count and the top SKUs."""
        return {
            "model": self.MODEL,
            "version": self.VERSION,
            "size": self.calendar.size,
            "allowed_lateness": self.allowed_lateness,
            "origin": self.calendar.origin,
            "max_quiet": self.max_quiet,
            "top": self.top.state_dict(),
            "late": self.late,
            "late_views": self.late_views,
            "open": {
                series: [[index, *cell] for index, cell in sorted(windows.items())]
                for series, windows in sorted(self._open.items())
            },
            "first_open": dict(sorted(self._first_open.items())),
            "sku_start": dict(sorted(self._sku_start.items())),
            "sku_cells": [[index, sorted([sku, *cell] for sku, cell in cells.items())]
                          for index, cells in sorted(self._sku_cells.items())],
            "fresh": sorted(self._fresh),
            "closed_below": self._closed_below,
            "max_ts": self._max_ts,
            "watermark": self.watermark,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """Rebuild from :meth:`state_dict` output (of this version, or of version 2 or 3).

        A state saved before ``max_quiet`` existed gets the default. Version 3 ranked SKUs as orders arrived and
        kept no SKU cells: its open windows' SKUs are not ranked again.
        """
        if state.get("model") == cls.MODEL and state.get("version") == 2:
            state = state | {"version": 3, "late_views": 0, "open": {
                series: [[*cell, 0] for cell in cells] for series, cells in state["open"].items()}}
        if state.get("model") == cls.MODEL and state.get("version") in (2, 3):
            state = state | {"version": cls.VERSION, "sku_cells": []}
        check_state_tag(state, cls.MODEL, cls.VERSION)
        windows = cls(state["size"], state["allowed_lateness"], origin=state["origin"],
                      max_quiet=state.get("max_quiet", MAX_QUIET))
        windows.top = TopSkus.from_state(state["top"])
        windows.late = state["late"]
        windows.late_views = state["late_views"]
        windows._open = {
            series: {index: cell for index, *cell in cells}
            for series, cells in state["open"].items()
        }
        windows._first_open = dict(state["first_open"])
        windows._sku_start = dict(state["sku_start"])
        windows._sku_cells = {index: {sku: cell for sku, *cell in cells} for index, cells in state["sku_cells"]}
        windows._fresh = set(state["fresh"])
        windows._closed_below = state["closed_below"]
        windows._max_ts = state["max_ts"]
        windows.watermark = state["watermark"]
        return windows
