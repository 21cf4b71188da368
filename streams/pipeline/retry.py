"""Bad days are states: retrying idempotent steps, guarding timers, and what is failing now.

A step that talks to Redis or the broker can fail for seconds or minutes (a
restart, a failover, a freeze). Such a failure must neither drop data nor
stop the worker, and must not flood the log: :func:`until_done` retries an
idempotent step until it succeeds (the stage stalls and its lag grows) and
:func:`guarded` runs a periodic step (metrics, sync rounds) whose failure is
simply retried at its next tick. Both report to :data:`FAILING`, which the
worker's health view publishes: a failure is logged once when it starts (one
line, with the reason), again at most every :data:`REMIND_SECONDS` while it
lasts, and once when the step recovers.

>>> import asyncio
>>> attempts = []
>>> async def flaky():
...     attempts.append(1)
...     if len(attempts) < 3:
...         raise ConnectionError("Redis is restarting")
>>> asyncio.run(until_done("views", flaky, first_wait=0.0))
>>> len(attempts), "views" in FAILING
(3, False)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

#: While a step keeps failing, its failure is logged again this often.
REMIND_SECONDS = 60.0


@dataclass
class Failure:
    """A step failing now: since when, how often, and the last reason (one line)."""

    since: float
    failures: int
    reason: str
    last_logged: float

    def to_dict(self) -> dict[str, object]:
        return {"since": round(self.since, 3), "failures": self.failures, "reason": self.reason,
                "seconds": round(time.time() - self.since, 1)}


#: Steps failing now in this process, by name.
FAILING: dict[str, Failure] = {}
#: Failures seen since start, by step name (for the metrics).
FAILURES_TOTAL: dict[str, int] = {}


def reason_of(exc: BaseException) -> str:
    """An exception as one short line: type and message."""
    text = " ".join(str(exc).split()) or "no message"
    return f"{type(exc).__name__}: {text[:300]}"


def record_failure(what: str, exc: BaseException) -> None:
    """Note a failure of ``what``; log it if it starts an outage or a reminder is due."""
    now = time.time()
    FAILURES_TOTAL[what] = FAILURES_TOTAL.get(what, 0) + 1
    failure = FAILING.get(what)
    if failure is None:
        FAILING[what] = Failure(now, 1, reason_of(exc), now)
        log.warning("%s failing: %s (retrying; logged again every %.0f s while it lasts)",
                    what, reason_of(exc), REMIND_SECONDS)
        return
    failure.failures += 1
    failure.reason = reason_of(exc)
    if now - failure.last_logged >= REMIND_SECONDS:
        failure.last_logged = now
        log.warning("%s still failing after %.0f s (%d failures): %s", what, now - failure.since,
                    failure.failures, failure.reason)


def record_success(what: str) -> None:
    """Note that ``what`` succeeded; log the end of an outage."""
    failure = FAILING.pop(what, None)
    if failure is not None:
        log.warning("%s recovered after %.1f s (%d failures)", what, time.time() - failure.since, failure.failures)


async def until_done(what: str, attempt: Callable[[], Awaitable[None]], longest_wait: float = 5.0,
                     first_wait: float = 0.1) -> None:
    """Run ``attempt`` until it succeeds, backing off.

    For idempotent steps whose failure (a broker or Redis timeout or restart)
    must not drop data: the stage stalls visibly (its lag grows) instead.
    Cancellation (a stop) is never retried.
    """
    wait = first_wait
    while True:
        try:
            await attempt()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            record_failure(what, exc)
            await asyncio.sleep(wait)
            wait = min(longest_wait, max(wait * 2, 0.1))
        else:
            record_success(what)
            return


def guarded(what: str, step: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    """A periodic step whose failure is recorded and retried at its next tick instead of crashing the worker."""

    async def run() -> None:
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            record_failure(what, exc)
        else:
            record_success(what)

    run.__name__ = run.__qualname__ = f"guarded_{what.replace(' ', '_')}"
    return run
