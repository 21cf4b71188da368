"""Shop time: when customers are active, and how timestamps are written on the wire."""

from __future__ import annotations

import time
from bisect import bisect_right
from datetime import datetime, timezone
from functools import lru_cache

HOUR = 3600.0
DAY = 86_400.0
WEEK_HOURS = 168

_RAW_HOURLY = (
    0.45, 0.25, 0.15, 0.10, 0.10, 0.15, 0.35, 0.60, 0.85, 1.00, 1.15, 1.35,
    1.50, 1.35, 1.15, 1.10, 1.15, 1.30, 1.55, 1.80, 1.95, 1.70, 1.20, 0.75,
)
_RAW_WEEKDAY = (0.92, 0.90, 0.93, 0.95, 1.02, 1.20, 1.18)

#: Relative activity per UTC hour of day (mean 1): quiet at night, peaks at 12:00 and 20:00.
HOURLY_PROFILE: tuple[float, ...] = tuple(v * 24 / sum(_RAW_HOURLY) for v in _RAW_HOURLY)
#: Relative activity per weekday, Monday first (mean 1): weekend uplift.
WEEKDAY_PROFILE: tuple[float, ...] = tuple(v * 7 / sum(_RAW_WEEKDAY) for v in _RAW_WEEKDAY)


class ActivityClock:
    """The shop's seasonal activity as a cumulative intensity over time.

    Activity is measured in *active days*: one active day is what a customer
    does in an average day. A customer with rate ``r`` sessions per active day
    starts sessions as a Poisson process with intensity ``r * profile(t)``;
    :meth:`advance` turns an exponential draw into the next session time
    (time rescaling), so no draw is ever rejected. Memory is one week of hours.

    >>> clock = ActivityClock(datetime(2026, 11, 2, tzinfo=timezone.utc).timestamp())
    >>> round(clock.active_days(clock.origin, clock.origin + 7 * DAY), 6)
    7.0
    >>> t = clock.advance(clock.origin, 0.5)
    >>> round(clock.active_days(clock.origin, t), 6)
    0.5
    """

    def __init__(self, start_ts: float) -> None:
        start = datetime.fromtimestamp(start_ts, timezone.utc)
        midnight = start.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
        #: Monday 00:00 UTC on or before the start: hour 0 of the weekly cycle.
        self.origin = midnight - start.weekday() * DAY
        self._rates = [
            HOURLY_PROFILE[h % 24] * WEEKDAY_PROFILE[h // 24] / 24 for h in range(WEEK_HOURS)
        ]
        self._cumulative = [0.0]
        for rate in self._rates:
            self._cumulative.append(self._cumulative[-1] + rate)
        self._week = self._cumulative[-1]

    def activity(self, ts: float) -> float:
        """How busy the shop is at ``ts`` relative to its weekly mean (1.0 = an average hour)."""
        hour = int(((ts - self.origin) / HOUR) % WEEK_HOURS)
        return self._rates[hour] * WEEK_HOURS / self._week

    def _level(self, ts: float) -> float:
        hours = (ts - self.origin) / HOUR
        weeks, in_week = divmod(hours, WEEK_HOURS)
        hour = int(in_week)
        return weeks * self._week + self._cumulative[hour] + (in_week - hour) * self._rates[hour]

    def active_days(self, t0: float, t1: float) -> float:
        """Active days between two instants."""
        return self._level(t1) - self._level(t0)

    def advance(self, ts: float, active_days: float) -> float:
        """The instant at which ``active_days`` more activity has passed since ``ts``."""
        weeks, rest = divmod(self._level(ts) + active_days, self._week)
        hour = min(bisect_right(self._cumulative, rest) - 1, WEEK_HOURS - 1)
        fraction = (rest - self._cumulative[hour]) / self._rates[hour]
        return self.origin + (weeks * WEEK_HOURS + hour + fraction) * HOUR


@lru_cache(maxsize=64)
def _date(day: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(day * 86_400))


def iso_ms(ms: int) -> str:
    """Epoch milliseconds as the wire timestamp, e.g. ``2026-11-01T12:00:00.250Z``.

    >>> iso_ms(1_793_534_400_250)
    '2026-11-01T12:00:00.250Z'
    """
    seconds, millis = divmod(ms, 1000)
    day, in_day = divmod(seconds, 86_400)
    hour, in_hour = divmod(in_day, 3600)
    minute, second = divmod(in_hour, 60)
    return f"{_date(day)}T{hour:02d}:{minute:02d}:{second:02d}.{millis:03d}Z"


def iso_s(ts: float) -> str:
    """Epoch seconds as the wire timestamp, to the millisecond."""
    return iso_ms(int(round(ts * 1000)))
