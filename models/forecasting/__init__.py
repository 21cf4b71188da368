"""Sales forecasting: event-time windows, per-series forecasters, surge alerts.

Start reading at :class:`~models.forecasting.monitor.SalesMonitor`, the whole
flow in one object: order records go into :class:`SalesWindows` (tumbling
event-time windows per category, per top SKU (:class:`TopSkus`) and in total,
with allowed lateness); each closed window (:class:`WindowSales`) is checked by
the :class:`SurgeDetector` (a CUSUM of the orders' log-likelihood ratio of a
surge, with the units beyond the forecast's interval) against the forecast
made for it, then learned by that series' :class:`SalesForecaster`
(a River regressor: slot-of-day profile x day-of-week factor x recent
level, robust to surges, with a prediction interval, and River's
``HoltWinters`` as a candidate), which measures itself against
:class:`SeasonalNaive` with River's metrics (:class:`ForecastErrors`) and
watches its errors with River's ``PageHinkley`` (:class:`DriftSignal`, in
:attr:`SalesUpdate.drifts`); open windows are checked as
they fill, so a strong surge alerts before its window closes. Views for
``kairos:forecast:{scope}:{key}`` come out of :meth:`SalesMonitor.view`.
With inventory counts, :class:`StockBook` turns each SKU's demand forecast
(:meth:`SalesForecaster.demand`) into hours until stock-out and ``restock`` alerts.
"""

from models.base import ContractCase
from models.forecasting.baseline import SeasonalNaive
from models.forecasting.forecaster import DriftSignal, Forecast, SalesForecaster
from models.forecasting.metrics import ForecastErrors
from models.forecasting.monitor import SalesMonitor, SalesUpdate
from models.forecasting.surge import Alert, SalesCheck, SurgeDetector
from models.forecasting.stock import RestockAlert, StockBook, StockUpdate
from models.forecasting.top_skus import TopSkus
from models.forecasting.window_calendar import WindowCalendar
from models.forecasting.windows import LateCorrection, SalesWindows, WindowSales

__all__ = [
    "Alert",
    "CONTRACT_CASES",
    "DriftSignal",
    "Forecast",
    "ForecastErrors",
    "LateCorrection",
    "SalesCheck",
    "SalesForecaster",
    "SalesMonitor",
    "SalesUpdate",
    "SalesWindows",
    "RestockAlert",
    "SeasonalNaive",
    "StockBook",
    "StockUpdate",
    "SurgeDetector",
    "TopSkus",
    "WindowCalendar",
    "WindowSales",
]

#: Compressed days of six one-minute windows, a two-day week and a little deterministic noise.
_SEASONAL_SALES = [
    ({"window_start": k * 60.0}, float((k % 6) * (2 + k % 12 // 6) + (k * 7) % 3)) for k in range(80)
]
_WINDOW_STARTS = [{"window_start": k * 60.0} for k in (80, 81, 85, 200)]

CONTRACT_CASES = [
    ContractCase(
        name="SalesForecaster",
        factory=lambda: SalesForecaster(window_size=60.0, season_length=6, days_per_week=2, warmup=12),
        samples=_SEASONAL_SALES,
        predict_inputs=_WINDOW_STARTS,
    ),
    ContractCase(
        name="SeasonalNaive",
        factory=lambda: SeasonalNaive(window_size=60.0, season_length=6),
        samples=_SEASONAL_SALES,
        predict_inputs=_WINDOW_STARTS,
    ),
]
