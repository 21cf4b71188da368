"""Running one Kairos worker process (the production path of ``kairos worker``)."""

from __future__ import annotations

import gc
import logging

import faust

from streams.pipeline.app import KairosApp
from streams.pipeline.topics import ensure_topics
from streams.settings import KairosSettings


def run_worker(settings: KairosSettings) -> None:
    """Create missing topics, then run the Faust worker until SIGINT/SIGTERM.

    The worker keeps hundreds of thousands of long-lived objects (customer
    states); with CPython's default thresholds a full collection walks them
    all every few seconds (tens to hundreds of ms, a latency spike). Young
    generations are collected less often and objects alive after start-up
    are frozen out of the collector.
    """
    gc.set_threshold(50_000, 20, 100)
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux/macOS
        pass
    ensure_topics(settings)
    kairos = KairosApp(settings)
    level = settings.log_level.upper()

    @kairos.app.task
    async def _quiet_root_logger() -> None:
        # Faust's start-up spinner leaves the root logger at DEBUG; put it back.
        logging.getLogger().setLevel(level)
        gc.freeze()

    worker = faust.Worker(kairos.app, loglevel=level, quiet=True)
    worker.execute_from_commandline()
