"""Where a tumbling window sits in event time and in the shop's week."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class WindowCalendar:
    """Tumbling windows of ``size`` seconds and their slot of day and day of week.

    Window ``k`` covers ``[origin + k * size, origin + (k + 1) * size)``. A *day*
    is ``season_length`` windows (24 hourly windows in production; a compressed
    day of a few minutes in a demo) and a week is ``days_per_week`` days, so a
    window's calendar features (slot of day, day of week) follow from its index.
    Day 0 is the day starting at ``origin``; with hourly windows and ``origin``
    0 the slots are UTC hours and weekday 0 is a Thursday (1970-01-01).

    >>> hourly = WindowCalendar(size=3600.0, season_length=24)
    >>> k = hourly.index_of(1795327277.1)  # 2026-11-22T06:01:17Z, a Sunday
    >>> hourly.start(k), hourly.slot(k), hourly.weekday(k)
    (1795327200.0, 6, 3)
    """

    size: float
    season_length: int = 1
    days_per_week: int = 7
    origin: float = 0.0

    def __post_init__(self) -> None:
        if self.size <= 0 or self.season_length < 1 or self.days_per_week < 1:
            raise ValueError("size must be positive; season_length and days_per_week at least 1")

    def index_of(self, ts: float) -> int:
        """Index of the window holding the instant ``ts``."""
        return math.floor((ts - self.origin) / self.size)

    def index_of_start(self, start: float) -> int:
        """Index of the window starting at ``start`` (robust to float rounding)."""
        return round((start - self.origin) / self.size)

    def start(self, index: int) -> float:
        """Start of window ``index``, epoch seconds."""
        return self.origin + index * self.size

    def slot(self, index: int) -> int:
        """Slot of day of window ``index`` (the hour for hourly windows)."""
        return index % self.season_length

    def day(self, index: int) -> int:
        """Day number of window ``index`` since ``origin``."""
        return index // self.season_length

    def weekday(self, index: int) -> int:
        """Day of week of window ``index``."""
        return self.day(index) % self.days_per_week
