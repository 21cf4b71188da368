"""Replay wire events at a speed factor of their own event times."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any


def paced(
    events: Iterable[dict[str, Any]],
    speed: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[dict[str, Any]]:
    """Yield time-ordered wire events (ISO ``ts``) so that ``speed`` seconds of event time pass per wall second.

    ``speed=60`` replays an hour of orders in a minute; ``speed=math.inf``
    sends as fast as possible. Event time is anchored at the first event; an
    event earlier than one already sent goes out at once.

    >>> waits = []
    >>> events = [{"ts": "2010-12-01T08:26:00+00:00"}, {"ts": "2010-12-01T08:28:00+00:00"}]
    >>> [e["ts"][11:16] for e in paced(events, speed=60.0, clock=lambda: 0.0, sleep=waits.append)]
    ['08:26', '08:28']
    >>> waits
    [2.0]
    """
    if speed <= 0:
        raise ValueError("speed must be positive (math.inf for no pacing)")
    start_wall: float | None = None
    start_event = 0.0
    for event in events:
        if math.isinf(speed):
            yield event
            continue
        ts = datetime.fromisoformat(event["ts"]).timestamp()
        if start_wall is None:
            start_wall, start_event = clock(), ts
        delay = start_wall + (ts - start_event) / speed - clock()
        if delay > 0:
            sleep(delay)
        yield event
