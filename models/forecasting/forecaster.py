"""Sales forecasting per series: a robust seasonal profile with a prediction interval.

River parts: :class:`SalesForecaster` is a ``river.base.Regressor`` (River's
``clone``, ``repr``, parameters and estimator checks; ``predict_one`` answers
a number, so it runs in ``river.evaluate.progressive_val_score`` and
``river.compose`` pipelines). Among its candidate forecasts is River's
``time_series.HoltWinters`` (additive, daily season); its errors are River
metrics (:class:`~models.forecasting.metrics.ForecastErrors`); a
``river.drift.PageHinkley`` watches its scaled absolute errors and raises a
drift signal (:attr:`SalesForecaster.last_drift`), with ``river.stats.Mean``
and ``river.utils.Rolling`` for the errors before and after.

Not River: the seasonal profile x day-of-week factor x level model with
robust (winsorized) learning, a pooled daily shape, residual-quantile
intervals and the candidate choice. On hourly sales River's own forecasters
lose to it by progressive MAE over seasonal-naive (``HoltWinters`` and
``SNARIMAX`` alone, and ``LinearRegression`` on lags and calendar one-hots:
``python -m streams.tools.evaluation.forecasting --compare``), and none of
them gives intervals or robustness to surges, so that model is written here;
``HoltWinters`` is kept as a candidate and wins the series where it is better.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any, NamedTuple, Self

from river import base, drift, stats, time_series, utils

from models.base import check_state_tag, from_river_state, river_state, rolling_from_state, rolling_state
from models.forecasting.baseline import SeasonalNaive
from models.forecasting.metrics import ForecastErrors
from models.forecasting.window_calendar import WindowCalendar

#: Basis of a forecast made before a whole season was seen: the mean of the windows so far.
WARMING_UP = "warming-up"
#: Basis of a forecast from the learned profile.
SEASONAL = "seasonal"
#: Residuals needed before the interval and the robust update use their empirical distribution.
MIN_RESIDUALS = 24
#: A window expected to sell under half a sale that stays empty says nothing about the noise.
QUIET = 0.5
#: Floor of the residuals' robust scale (a Poisson series has about 0.67 on this scale).
MIN_SCALE = 0.5
#: Below this squared weekday factor a day counts as (nearly) closed: it barely moves the profile.
CLOSED_DAY = 0.01
#: Per window, how much of the own and pooled forecasts' past absolute errors is kept (about the last 50).
POOL_ERROR_KEEP = 0.98
#: River ``HoltWinters`` smoothing of the level, trend and season (the candidate's parameters).
HOLT_WINTERS = {"alpha": 0.1, "beta": 0.001, "gamma": 0.1}
#: Holt-Winters is published only while its recent error is below this share of the chosen forecast's.
HOLT_WINTERS_MARGIN = 0.75
#: River ``PageHinkley`` on the scaled absolute errors: increases below this many residual scales are ignored.
DRIFT_DELTA = 0.5
#: Errors fed to ``PageHinkley`` are capped at this many residual scales: one bulk order is not a drift.
DRIFT_CAP = 4.0


@dataclass(frozen=True)
class Forecast:
    """Expected sales of one window and the interval its actual should fall in."""

    window_start: float
    value: float
    lower: float
    upper: float
    #: ``"seasonal"``, or ``"warming-up"`` before a whole season was seen.
    basis: str


@dataclass(frozen=True)
class DriftSignal:
    """River's ``PageHinkley`` found this forecaster's errors rising: what the pipeline can turn into an alert.

    ``metric`` is what was watched (the absolute error of the published
    forecast in units of the window's noise scale); ``before`` its mean from
    the previous signal (or the start) to this one, ``after`` its mean over
    the last quarter season of windows (Page-Hinkley fires a few windows
    after a change: a longer span would be mostly the time before it).
    """

    window_start: float
    metric: str
    before: float
    after: float

    def to_dict(self) -> dict[str, Any]:
        """Plain data."""
        return asdict(self)


class ResidualStats(NamedTuple):
    """What the recent scaled residuals say: interval quantiles, robust scale and median."""

    lower: float
    upper: float
    scale: float
    median: float


def _quantile(ordered: list[float], p: float) -> float:
    """The ``p`` quantile of sorted values, interpolating between neighbours."""
    position = p * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (position - low) * (ordered[high] - ordered[low])


class SalesForecaster(base.Regressor):
    """Forecast one series' sales per window: slot-of-day profile x day-of-week factor x recent level.

    Chosen over River's ``LinearRegression`` (lags + calendar one-hots),
    ``SNARIMAX`` and ``HoltWinters`` by progressive MAE on seasonal data (see
    ``streams/tools/evaluation/forecasting.py --compare``). The model is

    ``forecast = profile[slot of day] * weekday[day of week] * level``

    - ``profile`` holds the expected sales of each slot of a day (``season_length``
      slots): the running mean of its first ``1 / smoothing`` visits, then an
      exponential average with rate ``smoothing``;
    - ``weekday`` holds multiplicative day-of-week factors (mean 1), updated at
      each day's end from the ratio of the day's actual to expected sales;
      ``days_per_week=1`` turns them off;
    - ``level`` is the volume-weighted ratio of recent actual to expected sales
      (exponential averages with rate ``level_rate``, shrunk towards 1 by one
      average window), so a busier or quieter stretch shifts the forecast at once
      without rewriting the profile.

    **Robust learning**: once enough residuals are known, each actual is
    winsorized to ``forecast ± robustness x MAD`` before it is learned (a Huber
    update, as in Gelper, Fried & Croux's robust Holt-Winters). A surge or a bulk
    order therefore moves the profile and the level by a bounded step per
    window: it is not learned as the new normal within a few windows.

    **Interval and point**: sales arrive as purchases of random size, so their
    noise grows like ``sqrt(size x (mean + size))``, ``size`` being the mean
    size of one purchase (units or revenue per order line, learned when ``x``
    carries the window's ``"lines"``; 1 otherwise, as for plain counts).
    Residuals from the model's mean divided by that scale are kept for the last
    ``residual_memory`` windows. The interval is the mean plus their
    ``(1 - coverage) / 2`` and ``(1 + coverage) / 2`` quantiles times the scale,
    never below 0, leaving out windows expected and found empty (a closed shop
    says nothing about noise); until 24 such residuals are known it is the
    normal approximation ``± z x scale``. The published point forecast is the
    mean plus the residuals' median times the scale: sales are skewed, and the
    median is what minimises the absolute error (a slow SKU's best guess for
    an hour is often 0). The same interval is used at every horizon. The
    scaling makes the model indifferent to the unit: revenue forecasts are
    price x units forecasts.

    **Pooled shape**: a series that sells a few units a window cannot learn
    its own hour-of-day profile well (each slot sees one window a day). Given
    a ``parent`` (the shop's total, whose profile rests on every sale: the
    :class:`~models.forecasting.monitor.SalesMonitor` links it), the
    forecaster also keeps a second forecast, the parent's shape (its profile x
    day factor, over the profile's mean) times this series' own scale (the
    ratio of its sales to that shape, exponential averages with rate
    ``pool_rate``, so it also follows the series' level within a day). Both
    are scored on every learned window before it is learned (discounted
    absolute errors, about the last 50 windows), and the one with the smaller
    error is the forecast: a series with a profile of its own keeps it, a
    sparse one borrows the shop's. Progressive MAE over seasonal-naive's:
    Online Retail month, SKUs 0.98 -> 0.79, categories 0.69 -> 0.68; simulated
    shops (2,000 customers, seeds 1-8), SKUs 0.78 -> 0.75, categories
    0.73 -> 0.71, and on seeds 9-12 (not used to choose ``pool_rate`` among
    0.005-0.1) 0.78 -> 0.76 and 0.74 -> 0.71.

    **River's Holt-Winters as a candidate**: a River ``time_series.HoltWinters``
    (additive, season ``season_length``, parameters :data:`HOLT_WINTERS`)
    learns every window too (a missing window as 0 sales, at most a season
    of them), robustly as the profile does: each actual winsorized around
    Holt-Winters' own forecast (Gelper, Fried & Croux's robust Holt-Winters
    pre-cleans its observations the same way), a window held out as unusual
    learned as its own forecast. Its forecast and the one chosen above (own
    or pooled) are scored on every seasonal window before it is learned
    (discounted absolute errors, as above), and Holt-Winters' point forecast
    is published while its error is below :data:`HOLT_WINTERS_MARGIN` (3/4)
    of the chosen one's. It replaces the point only: the interval, the mean
    the surge detector counts against (:meth:`expected`), the residuals and
    the robust learning stay on the seasonal model. (Published as the mean
    too, it raised the surge alerts off the planted surges from 1.08 to 1.31
    a day on the simulator and from 51 to 66 on Online Retail; published
    whenever its error was merely the smaller, it also raised the 10-day
    test shop's SKU MAE ratio from 0.741 to 0.765.) On Online Retail it is
    published for 28 % of the top-SKU windows, 8 % of the category windows
    (MAE ratio to seasonal-naive 0.790 -> 0.733 and 0.676 -> 0.674).
    :meth:`metrics` counts the windows it was published for
    (``holt_winters_windows``). Its components are trimmed to what its
    recursions read (River keeps their whole history).

    **Drift**: a River ``drift.PageHinkley`` (mode ``up``, ``delta``
    :data:`DRIFT_DELTA`, threshold ``drift_threshold``) watches the absolute
    error of each scored window's published forecast over the window's noise
    scale times the residuals' robust scale (unit-free and relative to the
    series' usual errors, so one threshold serves a Poisson-like shop and a
    wholesaler's bursty one), capped at :data:`DRIFT_CAP` (a bulk order is
    one bad window, not a drift), leaving out windows held out as unusual (a
    surge has its own alert). When it fires,
    :attr:`drift_detected` is true after that :meth:`learn_one` and
    :attr:`last_drift` holds a :class:`DriftSignal` (the mean error before and
    after); :meth:`metrics` counts ``drifts``. The forecaster itself already
    adapts (level, robust profile, candidate choice); the signal is for the
    pipeline to raise an alert. ``delta`` and the default threshold (15)
    were chosen among 0.25/0.5 and 15/25 on simulated hourly Poisson series
    around a daily shape (peaks of 2, 20 and 200 sales an hour) and Online
    Retail: no signal in 30 steady series x 21 days per peak (1-5 per 1,000
    series-days with ``delta`` 0.25); a six-hour shift of the daily shape
    signalled 8-12 windows after it in 15 of 15 series at peaks of 20 and
    200, not within two weeks at a peak of 2; on the Online Retail month 1
    signal on the total and 3 over 31 categories (units)
    (``python -m streams.tools.evaluation.forecasting --drift``).

    **Cold start**: during the first season (``season_length`` windows learned)
    the forecast is the mean of the windows seen so far, with basis
    ``"warming-up"``; after it, basis ``"seasonal"``.

    **Errors**: every learned window is first scored (progressive validation)
    against seasonal-naive on the same window; after ``warmup`` windows
    (default one week) :meth:`metrics` reports MAE, sMAPE and their ratio.

    ``x`` is ``{"window_start": epoch seconds}``, optionally with ``"lines"``
    (order lines in the window) and ``"orders"`` (orders that bought from the
    series in it); ``y`` the window's sales (units or revenue).
    :meth:`predict_one` answers the point forecast (a number, as any River
    regressor); ``predict_one(x, with_interval=True)`` the :class:`Forecast`
    with its interval and basis.
    :meth:`expected_orders` turns the model's mean into orders, for the
    :class:`~models.forecasting.surge.SurgeDetector`.
    Memory: ``O(season_length + days_per_week + residual_memory)`` numbers,
    whatever the length of the stream (Holt-Winters' and the drift
    detector's included).

    >>> forecaster = SalesForecaster(window_size=3600.0, season_length=24, days_per_week=1)
    >>> for hour in range(24 * 7):  # a week of sales: 10 units per hour by day, 2 by night
    ...     forecaster.learn_one({"window_start": hour * 3600.0}, 10.0 if 8 <= hour % 24 < 20 else 2.0)
    >>> noon = forecaster.predict_one({"window_start": (24 * 7 + 12) * 3600.0}, with_interval=True)
    >>> round(noon.value, 6), noon.basis, noon.lower <= noon.value <= noon.upper
    (10.0, 'seasonal', True)
    >>> [round(f.value, 6) for f in forecaster.forecast()]  # next 3 windows: midnight to 02:00
    [2.0, 2.0, 2.0]

    As a River regressor it runs in River's progressive validation:

    >>> from river import evaluate, metrics
    >>> hours = [({"window_start": h * 3600.0}, 10.0 if 8 <= h % 24 < 20 else 2.0) for h in range(24 * 7)]
    >>> model = SalesForecaster(window_size=3600.0, season_length=24, days_per_week=1)
    >>> evaluate.progressive_val_score(hours, model, metrics.MAE())
    MAE: 0.482271
    """

    MODEL = "SalesForecaster"
    VERSION = 4

    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        yield {"window_size": 3600.0, "season_length": 24}

    def __init__(
        self,
        window_size: float,
        season_length: int,
        days_per_week: int = 7,
        horizon: int = 3,
        smoothing: float = 0.1,
        weekday_smoothing: float = 0.2,
        level_rate: float = 0.1,
        robustness: float = 2.0,
        coverage: float = 0.95,
        residual_memory: int = 240,
        warmup: int | None = None,
        origin: float = 0.0,
        pool_rate: float = 0.06,
        drift_threshold: float = 15.0,
    ) -> None:
        if not 0 < coverage < 1:
            raise ValueError("coverage must be between 0 and 1")
        self.window_size = window_size
        self.season_length = season_length
        self.days_per_week = days_per_week
        self.origin = origin
        self.drift_threshold = drift_threshold
        self.calendar = WindowCalendar(window_size, season_length, days_per_week, origin)
        self.horizon = horizon
        self.smoothing = smoothing
        self.weekday_smoothing = weekday_smoothing
        self.level_rate = level_rate
        self.robustness = robustness
        self.coverage = coverage
        self.residual_memory = residual_memory
        self.warmup = season_length * days_per_week if warmup is None else warmup
        self.pool_rate = pool_rate
        #: The forecaster whose shape a sparse series may borrow (linked by its owner, not checkpointed).
        self.parent: SalesForecaster | None = None
        # Pooled forecast: exponential averages of the sales and of the parent's shape at the same windows.
        self._pool_sales = 0.0
        self._pool_shape = 0.0
        self._pool_windows = 0
        # Discounted absolute errors of the own and the pooled forecast on the same windows.
        self._own_error = 0.0
        self._pool_error = 0.0
        self._profile = [0.0] * season_length
        self._visits = [0] * season_length
        self._weekday = [1.0] * days_per_week
        self._weekday_visits = [0] * days_per_week
        self._recent_actual = 0.0
        self._recent_expected = 0.0
        self._day: int | None = None
        self._day_actual = 0.0
        self._day_expected = 0.0
        self._residuals: deque[float] = deque(maxlen=residual_memory)
        # Whether each residual's window was expected and found empty.
        self._quiet: deque[bool] = deque(maxlen=residual_memory)
        self._residual_stats: ResidualStats | None = None
        self._stats_stale = True
        self._sales = 0.0
        self._lines = 0
        # Sales of the windows that carried "orders", and those orders.
        self._ordered_sales = 0.0
        self._orders = 0
        self._naive = SeasonalNaive(window_size, season_length, origin)
        self._errors = ForecastErrors(season_length)
        self.learned = 0
        self.last_index: int | None = None
        # River's Holt-Winters candidate, the last window it learned, and its and the chosen forecast's errors.
        self._holt_winters = self._new_holt_winters()
        self._hw_index: int | None = None
        self._hw_error = 0.0
        self._choice_error = 0.0
        self._hw_windows = 0
        # River's drift detector on the scaled absolute errors, their mean since the last signal and recently.
        self._drift = drift.PageHinkley(
            min_instances=season_length, delta=DRIFT_DELTA, threshold=drift_threshold, mode="up"
        )
        self._error_mean = stats.Mean()
        self._recent_error = utils.Rolling(stats.Mean, window_size=max(1, season_length // 4))
        self.drifts = 0
        #: Whether the last :meth:`learn_one` raised a drift signal (as River's detectors' ``drift_detected``).
        self.drift_detected = False
        #: The latest :class:`DriftSignal`, if any.
        self.last_drift: DriftSignal | None = None

    def _new_holt_winters(self) -> time_series.HoltWinters:
        return time_series.HoltWinters(**HOLT_WINTERS, seasonality=self.season_length)

    # -- answers -------------------------------------------------------------------

    def predict_one(self, x: dict[str, Any], with_interval: bool = False) -> Any:
        """The point forecast for the window starting at ``x["window_start"]`` (with its interval: a :class:`Forecast`).

        With ``x["elapsed"]`` (a share of the window, 0 to 1), for that first
        share only: the mean scaled to it, the interval from the same noise
        model at that mean (to judge an open window's sales so far).
        """
        forecast = self._forecast(x)
        return forecast if with_interval else forecast.value

    def _forecast(self, x: dict[str, Any]) -> Forecast:
        index = self.calendar.index_of_start(x["window_start"])
        mean, basis = self._mean(index)
        mean *= x.get("elapsed", 1.0)
        stats = self._stats()
        spread = self._spread(mean)
        if stats is None:
            z = NormalDist().inv_cdf((1.0 + self.coverage) / 2)
            stats = ResidualStats(-z, z, 1.0, 0.0)
        point = max(0.0, mean + stats.median * spread)
        if self._publishes_holt_winters(index, basis):
            river = self._hw_mean(index) * x.get("elapsed", 1.0)  # type: ignore[operator]
            point = max(0.0, river + stats.median * self._spread(river))
        lower = max(0.0, min(point, mean + stats.lower * spread))
        upper = max(point, mean + stats.upper * spread)
        return Forecast(self.calendar.start(index), point, lower, upper, basis)

    def expected(self, x: dict[str, Any]) -> float:
        """The model's mean for the window starting at ``x["window_start"]`` (scaled by ``x["elapsed"]``).

        Unlike :meth:`predict_one`'s point, not shifted by the residuals' median: the rate a count test needs.
        """
        mean, _ = self._mean(self.calendar.index_of_start(x["window_start"]))
        return max(mean, 0.0) * x.get("elapsed", 1.0)

    def expected_orders(self, x: dict[str, Any]) -> float:
        """Orders the window starting at ``x["window_start"]`` should see: the model's mean over the mean order.

        The mean order is learned from the ``"orders"`` of learned windows (1
        until some are known); ``x["elapsed"]`` scales it as in :meth:`predict_one`.
        """
        per_order = self._ordered_sales / self._orders if self._ordered_sales > 0 else 1.0
        return self.expected(x) / per_order

    def forecast(self, horizon: int | None = None) -> list[Forecast]:
        """Forecasts for the ``horizon`` windows after the last learned one (none before learning)."""
        if self.last_index is None:
            return []
        steps = self.horizon if horizon is None else horizon
        return [
            self._forecast({"window_start": self.calendar.start(self.last_index + step)})
            for step in range(1, steps + 1)
        ]

    def demand(self, start: float, steps: int) -> list[Forecast]:
        """Cumulative sales expected from the instant ``start`` to the end of each of the next ``steps`` windows.

        Each :class:`Forecast` holds the sum of the model's means from ``start`` (the window holding it counted
        for its remaining share) to its window's end, and the interval of that sum: the same residual quantiles
        as a window's interval, at the noise of the sum (``sqrt(sale size x (sum + sale size))``: purchases add
        up, so a day's demand is relatively tighter than an hour's). Empty before learning.

        >>> forecaster = SalesForecaster(3600.0, season_length=24)
        >>> for k in range(48):
        ...     forecaster.learn_one({"window_start": k * 3600.0}, 2.0)
        >>> day = forecaster.demand(48 * 3600.0 + 1800.0, 24)  # from half past the hour: 23.5 windows
        >>> round(day[0].value, 3), round(day[-1].value, 3), day[-1].lower <= day[-1].value <= day[-1].upper
        (1.0, 47.0, True)
        """
        if self.last_index is None:
            return []
        stats = self._stats()
        if stats is None:
            z = NormalDist().inv_cdf((1.0 + self.coverage) / 2)
            stats = ResidualStats(-z, z, 1.0, 0.0)
        first = self.calendar.index_of(start)
        share = (self.calendar.start(first + 1) - start) / self.calendar.size
        total, out = 0.0, []
        for step in range(steps):
            mean, basis = self._mean(first + step)
            total += mean * (share if step == 0 else 1.0)
            spread = self._spread(total)
            out.append(Forecast(self.calendar.start(first + step), total, max(0.0, total + stats.lower * spread),
                                max(total, total + stats.upper * spread), basis))
        return out

    def metrics(self) -> dict[str, float]:
        """Progressive MAE and sMAPE of the model and of seasonal-naive after warm-up, their ratio, recent MAE, drifts."""
        report = self._errors.as_dict()
        return report | {"drifts": self.drifts, "holt_winters_windows": self._hw_windows} if report else report

    @property
    def calibrated(self) -> bool:
        """Whether the interval comes from the forecaster's own residuals (else a normal approximation)."""
        return self._stats() is not None

    @property
    def errors(self) -> ForecastErrors:
        """The accumulated errors behind :meth:`metrics` (to pool them over series)."""
        return self._errors

    def _expected(self, index: int) -> float:
        """Sales of window ``index`` on a normal day: profile x weekday factor."""
        c = self.calendar
        return self._profile[c.slot(index)] * self._weekday[c.weekday(index)]

    def _level(self) -> float:
        """Recent actual over expected sales, shrunk towards 1 by one average window."""
        prior = sum(self._profile) / len(self._profile)
        denominator = self._recent_expected + prior
        return (self._recent_actual + prior) / denominator if denominator > 0 else 1.0

    def _publishes_holt_winters(self, index: int, basis: str) -> bool:
        """Whether Holt-Winters' forecast is the one published for window ``index``."""
        return (basis == SEASONAL and self._hw_error < HOLT_WINTERS_MARGIN * self._choice_error
                and self._hw_mean(index) is not None)

    def _mean(self, index: int) -> tuple[float, str]:
        """The model's mean sales for window ``index`` and its basis: own or pooled, whichever had the smaller errors."""
        mean, basis = self._own_mean(index)
        if basis == SEASONAL and self._pool_error < self._own_error:
            pooled = self._pooled_mean(index)
            if pooled is not None:
                return pooled, basis
        return mean, basis

    def _own_mean(self, index: int) -> tuple[float, str]:
        """This series' own profile x day factor x level (the mean so far while warming up)."""
        if self.learned < self.calendar.season_length:
            seen = [p for p, n in zip(self._profile, self._visits) if n]
            return (sum(seen) / len(seen) if seen else 0.0), WARMING_UP
        return self._expected(index) * self._level(), SEASONAL

    def _shape(self, index: int) -> float | None:
        """The parent's expected sales of window ``index`` over its profile's mean (``None`` without one)."""
        parent = self.parent
        if parent is None or parent.learned < parent.calendar.season_length:
            return None
        average = sum(parent._profile) / len(parent._profile)
        return parent._expected(index) / average if average > 0 else None

    def _pooled_mean(self, index: int) -> float | None:
        """The parent's shape at window ``index`` times this series' scale, once a season of it is known."""
        if self._pool_windows < self.calendar.season_length or self._pool_shape <= 0:
            return None
        shape = self._shape(index)
        return None if shape is None else shape * self._pool_sales / self._pool_shape

    def _hw_mean(self, index: int) -> float | None:
        """River Holt-Winters' forecast for window ``index``, up to a season ahead of the last window it learned."""
        if self._hw_index is None or not self._holt_winters._initialized:
            return None
        steps = index - self._hw_index
        if not 1 <= steps <= self.season_length:
            return None
        return max(0.0, self._holt_winters.forecast(steps)[-1])

    def _learn_holt_winters(self, index: int, actual: float, unusual: bool) -> None:
        """Score Holt-Winters and the chosen forecast on window ``index``, then let Holt-Winters learn it."""
        river = self._hw_mean(index)
        chosen, basis = self._mean(index)
        if river is not None and basis == SEASONAL and not unusual:
            self._hw_error = POOL_ERROR_KEEP * self._hw_error + abs(actual - river)
            self._choice_error = POOL_ERROR_KEEP * self._choice_error + abs(actual - chosen)
        if self._hw_index is not None and index <= self._hw_index:
            return  # an older window: Holt-Winters counts steps and has moved past it
        if self._hw_index is not None and index - self._hw_index > self.season_length:
            self._holt_winters, self._hw_index = self._new_holt_winters(), None
        if self._hw_index is None and actual == 0 and not self._holt_winters._first_values:
            return  # River's Holt-Winters divides by its first season's mean: it starts at the first sale
        hw = self._holt_winters
        for _ in range(index - self._hw_index - 1 if self._hw_index is not None else 0):
            hw.learn_one(0.0)  # a window with no record sold nothing
        if river is None:
            hw.learn_one(actual)
        else:  # the robust update: an unusual window as its forecast, others winsorized around it
            hw.learn_one(river if unusual else self._winsorized(actual, river))
        self._hw_index = index
        for component, keep in ((hw.level, 2), (hw.trend, 2), (hw.season, self.season_length)):
            while component is not None and len(component) > keep:
                component.popleft()

    def _watch_drift(self, window_start: float, actual: float, point: float, mean: float) -> None:
        """Feed River's Page-Hinkley the published forecast's absolute error in noise scales; signal a drift."""
        residuals = self._stats()
        scale = self._spread(mean) * (1.0 if residuals is None else residuals.scale)
        error = min(abs(actual - point) / scale, DRIFT_CAP)
        self._drift.update(error)
        self._error_mean.update(error)
        self._recent_error.update(error)
        self.drift_detected = self._drift.drift_detected
        if self.drift_detected:
            self.drifts += 1
            self.last_drift = DriftSignal(window_start, "scaled_abs_error", self._error_mean.get(),
                                          self._recent_error.get())
            self._error_mean = stats.Mean()

    def _learn_pool(self, index: int, actual: float) -> None:
        """Score the own and the pooled forecast on this window, then learn the pooled scale."""
        shape = self._shape(index)
        if shape is None:
            return
        own, basis = self._own_mean(index)
        pooled = self._pooled_mean(index)
        if basis == SEASONAL and pooled is not None:
            self._own_error = POOL_ERROR_KEEP * self._own_error + abs(actual - own)
            self._pool_error = POOL_ERROR_KEEP * self._pool_error + abs(actual - pooled)
        self._pool_windows += 1
        rate = max(self.pool_rate, 1.0 / self._pool_windows)
        self._pool_sales += rate * (actual - self._pool_sales)
        self._pool_shape += rate * (shape - self._pool_shape)

    def _stats(self) -> ResidualStats | None:
        """The recent residuals' quantiles, robust scale and median, once enough active windows are known."""
        if self._stats_stale:
            self._stats_stale = False
            active = sorted(r for r, quiet in zip(self._residuals, self._quiet) if not quiet)
            self._residual_stats = None
            if len(active) >= MIN_RESIDUALS:
                tail = (1.0 - self.coverage) / 2
                scale = max(_quantile(sorted(abs(r) for r in active), 0.5), MIN_SCALE)
                median = _quantile(sorted(self._residuals), 0.5)
                self._residual_stats = ResidualStats(
                    _quantile(active, tail), _quantile(active, 1.0 - tail), scale, median
                )
        return self._residual_stats

    def _sale_size(self) -> float:
        """Mean sales of one order line (1 until lines are known)."""
        return self._sales / self._lines if self._sales > 0 else 1.0

    def _spread(self, value: float) -> float:
        """Residual scale at a forecast: the noise of purchases of the mean size."""
        size = self._sale_size()
        return math.sqrt(size * (max(value, 0.0) + size))

    # -- learning ------------------------------------------------------------------

    def learn_one(self, x: dict[str, Any], y: float) -> None:
        """Score, then learn, the sales ``y`` of the window starting at ``x["window_start"]``.

        With ``x["unusual"]`` true (the window is in an alerted surge or slump),
        it is scored and the baselines see it, but the profile, day factors,
        level and residuals do not learn from it: tomorrow's forecast for that
        hour is not raised by today's surge.
        """
        index = self.calendar.index_of_start(x["window_start"])
        actual = float(y)
        mean, basis = self._mean(index)
        baseline = self._naive.predict_one(x)
        self.drift_detected = False
        point = None
        if self.learned >= self.warmup and baseline is not None:
            point = self.predict_one(x)
            self._errors.update(actual, point, baseline)
            self._hw_windows += self._publishes_holt_winters(index, basis)
        unusual = bool(x.get("unusual")) and basis == SEASONAL
        if point is not None and not unusual:  # a surge or slump has its own alert
            self._watch_drift(self.calendar.start(index), actual, point, mean)
        self._learn_holt_winters(index, actual, unusual)
        if not unusual:
            self._learn_pool(index, actual)
            self._learn_shape(index, actual, mean, basis, x)
        self._naive.learn_one(x, actual)
        self.learned += 1
        self.last_index = index if self.last_index is None else max(self.last_index, index)

    def _learn_shape(self, index: int, actual: float, mean: float, basis: str, x: dict[str, Any]) -> None:
        """Learn window ``index``'s sales into the profile, day factors, level, residuals and sale sizes."""
        target = actual
        if basis == SEASONAL:
            target = self._winsorized(actual, mean)
            self._residuals.append((actual - mean) / self._spread(mean))
            self._quiet.append(actual == 0 and mean < QUIET * self._sale_size())
            self._stats_stale = True
            self._learn_day_and_level(index, target)
        if x.get("lines"):
            self._sales += actual
            self._lines += x["lines"]
        if x.get("orders"):
            self._ordered_sales += actual
            self._orders += x["orders"]
        self._learn_profile(index, target)

    def _winsorized(self, actual: float, mean: float) -> float:
        stats = self._stats()
        if stats is None:
            return actual
        reach = self.robustness * stats.scale * self._spread(mean)
        return min(max(actual, mean - reach), mean + reach)

    def _learn_profile(self, index: int, target: float) -> None:
        slot = self.calendar.slot(index)
        self._visits[slot] += 1
        rate = max(self.smoothing, 1.0 / self._visits[slot])
        factor = self._weekday[self.calendar.weekday(index)]
        gain = rate * factor / max(factor * factor, CLOSED_DAY)
        self._profile[slot] += gain * (target - self._profile[slot] * factor)

    def _learn_day_and_level(self, index: int, target: float) -> None:
        day = self.calendar.day(index)
        if day != self._day:
            self._close_day()
            self._day = day
        expected = self._expected(index)
        self._day_actual += target
        self._day_expected += expected
        self._recent_actual += self.level_rate * (target - self._recent_actual)
        self._recent_expected += self.level_rate * (expected - self._recent_expected)

    def _close_day(self) -> None:
        """Move the finished day's weekday factor towards its actual/expected ratio; keep the mean at 1."""
        if self._day is not None and self._day_expected > 0:
            weekday = self._day % self.calendar.days_per_week
            self._weekday_visits[weekday] += 1
            rate = max(self.weekday_smoothing, 1.0 / self._weekday_visits[weekday])
            ratio = self._day_actual / self._day_expected
            self._weekday[weekday] += rate * (ratio - 1.0) * self._weekday[weekday]
            mean = sum(self._weekday) / len(self._weekday)
            if mean > 0:
                self._weekday = [w / mean for w in self._weekday]
                self._profile = [p * mean for p in self._profile]
        self._day_actual = 0.0
        self._day_expected = 0.0

    # -- checkpoints ---------------------------------------------------------------

    def _params(self) -> dict[str, Any]:
        c = self.calendar
        return {
            "window_size": c.size,
            "season_length": c.season_length,
            "days_per_week": c.days_per_week,
            "horizon": self.horizon,
            "smoothing": self.smoothing,
            "weekday_smoothing": self.weekday_smoothing,
            "level_rate": self.level_rate,
            "robustness": self.robustness,
            "coverage": self.coverage,
            "residual_memory": self.residual_memory,
            "warmup": self.warmup,
            "origin": c.origin,
            "pool_rate": self.pool_rate,
            "drift_threshold": self.drift_threshold,
        }

    def state_dict(self) -> dict[str, Any]:
        """Plain-data checkpoint: parameters, profile, factors, residuals, baseline and errors."""
        return {
            "model": self.MODEL,
            "version": self.VERSION,
            "params": self._params(),
            "profile": list(self._profile),
            "visits": list(self._visits),
            "weekday": list(self._weekday),
            "weekday_visits": list(self._weekday_visits),
            "recent_actual": self._recent_actual,
            "recent_expected": self._recent_expected,
            "day": self._day,
            "day_actual": self._day_actual,
            "day_expected": self._day_expected,
            "residuals": list(self._residuals),
            "quiet": list(self._quiet),
            "sales": self._sales,
            "lines": self._lines,
            "ordered_sales": self._ordered_sales,
            "orders": self._orders,
            "naive": self._naive.state_dict(),
            "errors": self._errors.state_dict(),
            "learned": self.learned,
            "last_index": self.last_index,
            "pool": [self._pool_sales, self._pool_shape, self._pool_windows, self._own_error, self._pool_error],
            "holt_winters": {"model": river_state(self._holt_winters), "index": self._hw_index,
                             "error": self._hw_error, "choice_error": self._choice_error,
                             "windows": self._hw_windows},
            "drift": {"detector": river_state(self._drift), "mean": river_state(self._error_mean),
                      "recent": rolling_state(self._recent_error), "drifts": self.drifts,
                      "detected": self.drift_detected,
                      "last": None if self.last_drift is None else self.last_drift.to_dict()},
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """Rebuild from :meth:`state_dict` output (of this version, or of version 2 or 3: no pooled forecast
        (2), no Holt-Winters candidate nor drift detector yet (2, 3): those start fresh).

        The ``parent`` link is not part of the state: the owner links it again.
        """
        if state.get("model") == cls.MODEL and state.get("version") == 2:
            state = state | {"version": 3, "pool": [0.0, 0.0, 0, 0.0, 0.0]}
        if state.get("model") == cls.MODEL and state.get("version") == 3:
            state = state | {"version": cls.VERSION, "holt_winters": None, "drift": None}
        check_state_tag(state, cls.MODEL, cls.VERSION)
        model = cls(**state["params"])
        model._profile = [float(v) for v in state["profile"]]
        model._visits = list(state["visits"])
        model._weekday = [float(v) for v in state["weekday"]]
        model._weekday_visits = list(state["weekday_visits"])
        model._recent_actual = state["recent_actual"]
        model._recent_expected = state["recent_expected"]
        model._day = state["day"]
        model._day_actual = state["day_actual"]
        model._day_expected = state["day_expected"]
        model._residuals.extend(state["residuals"])
        model._quiet.extend(state["quiet"])
        model._sales = state["sales"]
        model._lines = state["lines"]
        model._ordered_sales = state["ordered_sales"]
        model._orders = state["orders"]
        model._naive = SeasonalNaive.from_state(state["naive"])
        model._errors = ForecastErrors.from_state(state["errors"])
        model.learned = state["learned"]
        model.last_index = state["last_index"]
        sales, shape, windows, own_error, pool_error = state["pool"]
        model._pool_sales, model._pool_shape, model._pool_windows = sales, shape, windows
        model._own_error, model._pool_error = own_error, pool_error
        if state["holt_winters"] is not None:
            hw = state["holt_winters"]
            model._holt_winters = from_river_state(hw["model"])
            model._hw_index, model._hw_error, model._choice_error = hw["index"], hw["error"], hw["choice_error"]
            model._hw_windows = hw["windows"]
        if state["drift"] is not None:
            watch = state["drift"]
            model._drift = from_river_state(watch["detector"])
            model._error_mean = from_river_state(watch["mean"])
            rolling_from_state(model._recent_error, watch["recent"])
            model.drifts, model.drift_detected = watch["drifts"], watch["detected"]
            model.last_drift = None if watch["last"] is None else DriftSignal(**watch["last"])
        return model
