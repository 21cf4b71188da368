"""The forecasting flow in one object: orders in; closed windows, forecasts, alerts and views out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Self

from models.base import check_state_tag
from models.forecasting.forecaster import SEASONAL, Forecast, SalesForecaster
from models.forecasting.metrics import ForecastErrors
from models.forecasting.surge import Alert, SalesCheck, SurgeDetector
from models.forecasting.windows import TOTAL, LateCorrection, SalesWindows, WindowSales

#: What is forecast per series; alerts watch orders (from the units forecaster) and views.
MEASURES = ("units", "revenue", "views")


@dataclass
class SalesUpdate:
    """What one :meth:`SalesMonitor.advance` produced."""

    #: Opportunity alerts raised by the windows that closed or by the open windows so far.
    alerts: list[Alert] = field(default_factory=list)
    #: Fresh views of every series whose windows closed or were corrected since the last advance.
    views: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Series no longer tracked (a SKU that left the top): their views can be deleted.
    removed: list[str] = field(default_factory=list)
    #: Number of windows closed.
    closed: int = 0
    #: More windows are due than this advance closed (never: an advance closes every window due).
    pending: bool = False
    #: Drifts of the series whose forecasters learned a closed window, one per drift (see
    #: :meth:`SalesMonitor.advance`): ``series``, the ``measure`` that signalled first and the
    #: :class:`~models.forecasting.forecaster.DriftSignal` fields (River's ``PageHinkley`` on its errors).
    drifts: list[dict[str, Any]] = field(default_factory=list)
    #: Stock-out risk evaluated at the windows' closes (the sales stage's :class:`~models.forecasting.StockBook`):
    #: the view of every SKU with inventory, and the ``restock`` alerts.
    stock: dict[str, dict[str, Any]] = field(default_factory=dict)
    restocks: list[Any] = field(default_factory=list)

    @property
    def publishable(self) -> bool:
        """Whether it changed anything served: windows closed, alerts, or stock views."""
        return bool(self.closed or self.alerts or self.stock)


def _horizon_step(forecasts: dict[str, Forecast]) -> dict[str, Any]:
    """One future window of a view: its start, basis and each measure's forecast and interval."""
    units = forecasts["units"]
    step: dict[str, Any] = {"window_start": units.window_start, "basis": units.basis}
    for measure, f in forecasts.items():
        step |= {measure: f.value, f"{measure}_lower": f.lower, f"{measure}_upper": f.upper}
    return step


class SalesMonitor:
    """Sales windows, a forecaster per series and measure, a surge detector and the views they serve.

    Feed order records with :meth:`add_order` (or per-series sales with
    :meth:`add`) and product views with :meth:`add_view`, then call :meth:`advance` once per batch: each window the
    watermark closed is first checked by the :class:`SurgeDetector` against
    the forecast made for it (once the units forecaster's interval is
    calibrated on its own residuals, after about two seasons), then learned by
    that series' forecasters (``units`` and ``revenue``, clones of
    ``forecaster``), unless it is in an alerted surge or slump younger than a
    season: those windows are scored but not learned, so a surge does not
    raise the next day's forecast for its hours (at most a season's worth of
    windows a week per series; a longer change is learned as the new normal). With
    ``nowcast``, the open windows of every series that sold since the last
    advance are also checked with their sales so far, so a strong surge alerts
    before its window closes; off by default, as what a partial window shows
    depends on how far the watermark had got when it was checked (batching and
    arrival speed), not only on the events. The returned :class:`SalesUpdate` holds the
    alerts (at most one per episode, with ``window_start`` the start of the
    window it was raised in, open or closed) and the fresh :meth:`view` of
    every series that changed.

    **Drifts**: each forecaster's River ``PageHinkley`` signals when its
    errors rise (:class:`~models.forecasting.forecaster.DriftSignal`). The
    units, revenue and views forecasters of a series see the same change,
    and one that lasts signals again while they learn it, so the monitor
    reports one drift per series and change: a signal opens a drift unless
    the series signalled (any measure) within the season before it; every
    signal extends the drift. ``SalesUpdate.drifts`` holds the opening
    signal of each new drift; the forecasters' ``drifts`` metric still
    counts every signal.

    Late events (after their window closed) correct the recent actuals shown in
    the view, when that window is still shown; forecasters, errors and alerts
    are not revised (see :class:`SalesWindows`).

    Memory: the windows' bound, three forecasters, ``recent_actuals`` windows
    and the time of the last drift signal per tracked series; a SKU that
    leaves the top is forgotten where it left (one that comes back starts
    afresh, however many windows one advance closed).

    >>> monitor = SalesMonitor(SalesWindows(size=3600.0), SalesForecaster(3600.0, season_length=24))
    >>> for hour in range(3):
    ...     monitor.add_order({"ts": hour * 3600.0 + 60.0, "lines": [
    ...         {"sku": "A", "quantity": 4, "unit_price": 2.5, "category": "toys"}]})
    >>> update = monitor.advance(3 * 3600.0)
    >>> update.closed, sorted(update.views)
    (8, ['category:toys', 'sku:A', 'total:all'])
    >>> view = update.views["category:toys"]
    >>> view["last_units"], view["forecast_units"], view["basis"], view["next_window_start"]
    (4.0, 4.0, 'warming-up', 10800.0)
    """

    MODEL = "SalesMonitor"
    VERSION = 5

    def __init__(
        self,
        windows: SalesWindows,
        forecaster: SalesForecaster,
        detector: SurgeDetector | None = None,
        recent_actuals: int = 6,
        nowcast: bool = False,
    ) -> None:
        if (windows.calendar.size, windows.calendar.origin) != (forecaster.calendar.size, forecaster.calendar.origin):
            raise ValueError("the forecaster's window size and origin must match the windows'")
        self.windows = windows
        self.forecaster = forecaster.clone()
        self.detector = SurgeDetector() if detector is None else detector
        self.recent_actuals = recent_actuals
        #: Also check open windows with their sales so far (earlier surge alerts, but they then depend on how
        #: far the watermark had got at each check, i.e. on batching and arrival speed).
        self.nowcast = nowcast
        #: Corrections of actuals still shown in a view, one per series a late event touched.
        self.late_corrections = 0
        #: Alerts raised since the start.
        self.alerts = 0
        self._forecasters: dict[str, dict[str, SalesForecaster]] = {}
        # series -> recent closed windows as [start, units, revenue, lines, views], oldest first
        self._actuals: dict[str, list[list[float]]] = {}
        self._changed: set[str] = set()
        # series in an alerted episode -> start of its first window not learned
        self._episodes: dict[str, float] = {}
        # series -> starts of the windows held out from learning in the last week
        self._held_out: dict[str, list[float]] = {}
        # series -> start of the window of its latest drift signal (any measure)
        self._drift_signals: dict[str, float] = {}

    def add_order(self, order: dict[str, Any]) -> None:
        """Count an order record (``ts`` in epoch seconds, ``lines`` with ``sku``, ``quantity``, ``unit_price``)."""
        for correction in self.windows.add_order(order):
            self._correct(correction)

    def add_view(self, view: dict[str, Any]) -> None:
        """Count a product view record (``ts`` in epoch seconds, ``sku``, optional ``category``)."""
        self.windows.add_view(view)

    def add(self, series: str, ts: float, units: float, revenue: float, lines: int = 1) -> None:
        """Count sales of one series directly (when orders are split by series upstream)."""
        correction = self.windows.add(series, ts, units, revenue, lines)
        if correction is not None:
            self._correct(correction)

    def advance(self, watermark: float | None = None, views: bool = True) -> SalesUpdate:
        """Close the windows the watermark passed, score and learn them; return alerts and changed views
        (``views=False``: no views are built, for a caller that serves none, e.g. an offline replay)."""
        update = SalesUpdate()
        closed = self.windows.advance(watermark)
        # A SKU that left the top is forgotten where it left, before the windows from there on are learned: one
        # that re-enters within this advance starts afresh, as when each window closes in an advance of its own.
        departed = sorted(self.windows.departed, key=lambda d: d[0])
        forgotten: set[str] = set()
        for window in closed:
            while departed and departed[0][0] <= window.start:
                series = departed.pop(0)[1]
                if self._forget(series):
                    forgotten.add(series)
            update.alerts.append(self._learn(window, update.drifts))
            update.closed += 1
        tracked = set(self.windows.series)
        gone = [series for _, series in departed] + [s for s in self._forecasters if s not in tracked]
        forgotten.update(series for series in gone if self._forget(series))
        for series in self.windows.take_fresh():
            if self.nowcast:
                update.alerts.append(self._nowcast(series))
        update.alerts = [alert for alert in update.alerts if alert is not None]
        self.alerts += len(update.alerts)
        # Forgotten and not back with a closed window: the view served (if any) is of a series no longer tracked.
        update.removed = sorted(s for s in forgotten if s not in self._forecasters)
        if views:
            update.views = {series: self.view(series) for series in sorted(self._changed)}
        self._changed.clear()
        return update

    def views(self) -> dict[str, dict[str, Any]]:
        """Every tracked series' view as served now (each equals the last one :meth:`advance` gave for it): for a
        Redis that lost its views."""
        return {series: self.view(series) for series in sorted(self._forecasters) if self._actuals.get(series)}

    def forecaster_of(self, series: str, measure: str = "units") -> SalesForecaster | None:
        """The forecaster of ``series`` for ``measure`` (``None`` while the series has none: not tracked, or no
        window of it closed yet)."""
        models = self._forecasters.get(series)
        return None if models is None else models[measure]

    def _forget(self, series: str) -> bool:
        """Drop the forecasters, actuals and detector state of ``series``; whether it had forecasters."""
        models = self._forecasters.pop(series, None)
        self._actuals.pop(series, None)
        self._changed.discard(series)
        self.detector.forget(series)
        self._episodes.pop(series, None)
        self._held_out.pop(series, None)
        self._drift_signals.pop(series, None)
        return models is not None

    def _check(self, models: dict[str, SalesForecaster], sales: WindowSales, elapsed: float = 1.0
               ) -> SalesCheck | None:
        """The window's sales (so far) against their forecast, once the units forecaster is seasonal and calibrated.

        Its views are judged too once the views forecaster is, for a closed window (``elapsed`` 1): the
        detector weighs views on closed windows only.
        """
        x = {"window_start": sales.start, "elapsed": elapsed}
        forecaster = models["units"]
        expected = forecaster.predict_one(x, with_interval=True)
        if expected.basis != SEASONAL or not forecaster.calibrated:
            return None
        views = models["views"]
        expected_views = (views.expected(x) if elapsed == 1.0 and views.calibrated
                          and views.predict_one(x, with_interval=True).basis == SEASONAL else None)
        return SalesCheck(sales.series, sales.start, sales.units, sales.orders, expected.value, expected.lower,
                          expected.upper, forecaster.expected_orders(x), elapsed, sales.views, expected_views)

    def _learn(self, window: WindowSales, drifts: list[dict[str, Any]]) -> Alert | None:
        models = self._forecasters.get(window.series)
        if models is None:
            models = self._forecasters[window.series] = {m: self.forecaster.clone() for m in MEASURES}
        if window.series != TOTAL and models["units"].parent is None and TOTAL in self._forecasters:
            for measure, model in models.items():  # a sparse series may borrow the total's shape
                model.parent = self._forecasters[TOTAL][measure]
        check = self._check(models, window)
        alert = None if check is None else self.detector.observe(check)
        x = {"window_start": window.start, "lines": window.lines, "orders": window.orders,
             "unusual": self._unusual(window)}
        signals = []
        for measure, model in models.items():
            model.learn_one(x, getattr(window, measure))
            if model.drift_detected and model.last_drift is not None:
                signals.append({"series": window.series, "measure": measure} | model.last_drift.to_dict())
        if signals and self._opens_drift(window):
            drifts.append(signals[0])
        recent = self._actuals.setdefault(window.series, [])
        recent.append([window.start, window.units, window.revenue, window.lines, window.views])
        del recent[: -self.recent_actuals]
        self._changed.add(window.series)
        return alert

    def _opens_drift(self, window: WindowSales) -> bool:
        """Whether a drift signal of ``window``'s series starts a new drift: none came in the season before it."""
        calendar = self.forecaster.calendar
        last = self._drift_signals.get(window.series)
        self._drift_signals[window.series] = window.start
        return last is None or window.start - last >= calendar.season_length * calendar.size

    def _unusual(self, window: WindowSales) -> bool:
        """Whether the forecasters should not learn ``window``: it is in an alerted episode younger than a season.

        A surge or slump of up to a season (a day of hourly windows) is not
        learned as normal; one lasting longer is a change, and is learned.
        A series holds out at most a season's worth of windows a week, so a
        lasting change that alerts again and again is not held out again and
        again.
        """
        if not self.detector.in_episode(window.series):
            self._episodes.pop(window.series, None)
            return False
        calendar = self.forecaster.calendar
        season = calendar.season_length * calendar.size
        begun = self._episodes.setdefault(window.series, window.start)
        if window.start - begun >= season:
            return False
        week = calendar.days_per_week * season
        recent = [start for start in self._held_out.get(window.series, []) if window.start - start < week]
        unusual = len(recent) < calendar.season_length
        self._held_out[window.series] = recent + [window.start] if unusual else recent
        return unusual

    def _nowcast(self, series: str) -> Alert | None:
        """Check the open windows of ``series`` with their sales so far, scaled to the share of each that elapsed."""
        models = self._forecasters.get(series)
        if models is None:
            return None
        size, watermark = self.windows.calendar.size, self.windows.watermark
        checks = [
            self._check(models, sales, min(1.0, (watermark - sales.start) / size))
            for sales in self.windows.open_sales(series)
        ]
        if not checks or None in checks:
            return None
        return self.detector.nowcast(checks)

    def _correct(self, correction: LateCorrection) -> None:
        for shown in self._actuals.get(correction.series, []):
            if shown[0] == correction.start:
                shown[1] += correction.units
                shown[2] += correction.revenue
                shown[3] += correction.lines
                self.late_corrections += 1
                self._changed.add(correction.series)

    def view(self, series: str) -> dict[str, Any]:
        """What ``kairos:forecast:{scope}:{key}`` serves for ``series``: next forecasts, interval, last actuals, errors.

        Scalars describe the next window and the last closed one; ``horizon``
        (the next windows) and ``actuals`` (recent windows, oldest first) are
        lists of dicts; the error fields are the units forecaster's
        :meth:`SalesForecaster.metrics`.
        """
        scope, _, key = series.partition(":")
        models = self._forecasters[series]
        # A views forecaster restored from version 3 has no forecast until it learns a window.
        measures = [m for m in MEASURES if models[m].last_index is not None]
        steps = zip(*(models[measure].forecast() for measure in measures))
        horizon = [_horizon_step(dict(zip(measures, step))) for step in steps]
        actuals = [{"window_start": s, "units": u, "revenue": r, "lines": n, "views": v}
                   for s, u, r, n, v in self._actuals[series]]
        following = horizon[0]
        last = actuals[-1]
        return {
            "series": series,
            "scope": scope,
            "key": key,
            "window_size": self.windows.calendar.size,
            "basis": following["basis"],
            "next_window_start": following["window_start"],
            "forecast_units": following["units"],
            "lower_units": following["units_lower"],
            "upper_units": following["units_upper"],
            "forecast_revenue": following["revenue"],
            "lower_revenue": following["revenue_lower"],
            "upper_revenue": following["revenue_upper"],
            "forecast_views": following.get("views"),
            "last_window_start": last["window_start"],
            "last_units": last["units"],
            "last_revenue": last["revenue"],
            "last_lines": last["lines"],
            "last_views": last["views"],
            "horizon": horizon,
            "actuals": actuals,
        } | models["units"].metrics()

    def metrics(self) -> dict[str, float]:
        """Counts and, per scope, the units forecasters' pooled MAE ratio to seasonal-naive."""
        report: dict[str, float] = {
            "series": len(self._forecasters),
            "late_events": self.windows.late,
            "late_views": self.windows.late_views,
            "watermark": self.windows.watermark or 0.0,
            "late_corrections": self.late_corrections,
            "alerts": self.alerts,
        }
        for scope in ("total", "category", "sku"):
            pooled = self.pooled_errors(scope).as_dict()
            if "mae_ratio" in pooled:
                report[f"{scope}_mae_ratio"] = pooled["mae_ratio"]
        return report

    def pooled_errors(self, scope: str, measure: str = "units") -> ForecastErrors:
        """The errors of every series of ``scope`` (``total``, ``category``, ``sku``) taken together."""
        return ForecastErrors.pooled(
            models[measure].errors for series, models in self._forecasters.items() if series.startswith(scope + ":")
        )

    def state_dict(self) -> dict[str, Any]:
        """Plain-data checkpoint of the whole flow."""
        return {
            "model": self.MODEL,
            "version": self.VERSION,
            "windows": self.windows.state_dict(),
            "forecaster": self.forecaster.state_dict(),
            "detector": self.detector.state_dict(),
            "recent_actuals": self.recent_actuals,
            "late_corrections": self.late_corrections,
            "alerts": self.alerts,
            "forecasters": {
                series: {m: model.state_dict() for m, model in models.items()}
                for series, models in sorted(self._forecasters.items())
            },
            "actuals": {series: [list(a) for a in recent] for series, recent in sorted(self._actuals.items())},
            "changed": sorted(self._changed),
            "episodes": dict(sorted(self._episodes.items())),
            "held_out": {series: list(starts) for series, starts in sorted(self._held_out.items())},
            "drift_signals": dict(sorted(self._drift_signals.items())),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """Rebuild from :meth:`state_dict` output (of this version, or of version 3 or 4).

        A series restored from version 3 starts a fresh views forecaster, so its views are judged again once
        that one is seasonal and calibrated; from version 3 or 4, no drift signal is remembered, so a series'
        next signal opens a drift.
        """
        if state.get("model") == cls.MODEL and state.get("version") == 3:
            state = state | {"version": 4,
                             "actuals": {s: [[*a, 0] for a in recent] for s, recent in state["actuals"].items()}}
        if state.get("model") == cls.MODEL and state.get("version") == 4:
            state = state | {"version": cls.VERSION, "drift_signals": {}}
        check_state_tag(state, cls.MODEL, cls.VERSION)
        monitor = cls(
            SalesWindows.from_state(state["windows"]),
            SalesForecaster.from_state(state["forecaster"]),
            SurgeDetector.from_state(state["detector"]),
            state["recent_actuals"],
        )
        monitor.late_corrections = state["late_corrections"]
        monitor.alerts = state["alerts"]
        monitor._forecasters = {
            series: {m: SalesForecaster.from_state(models[m]) if m in models else monitor.forecaster.clone()
                     for m in MEASURES}
            for series, models in state["forecasters"].items()
        }
        total = monitor._forecasters.get(TOTAL)
        for series, models in monitor._forecasters.items():
            if total is not None and series != TOTAL:
                for measure, model in models.items():
                    model.parent = total[measure]
        monitor._actuals = {series: [list(a) for a in recent] for series, recent in state["actuals"].items()}
        monitor._changed = set(state["changed"])
        monitor._episodes = dict(state["episodes"])
        monitor._held_out = {series: list(starts) for series, starts in state["held_out"].items()}
        monitor._drift_signals = dict(state["drift_signals"])
        return monitor
