"""Retrying an idempotent step until it succeeds."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def until_done(what: str, attempt: Callable[[], Awaitable[None]], longest_wait: float = 5.0) -> None:
    """Run ``attempt`` until it succeeds, backing off; every failure is logged.

    For idempotent steps whose failure (a broker or Redis timeout under load)
    must not drop data: the stage stalls visibly (its lag grows) instead.
    """
    wait = 0.1
    while True:
        try:
            await attempt()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed; retrying in %.1f s", what, wait)
            await asyncio.sleep(wait)
            wait = min(longest_wait, wait * 2)
