"""Running one Kairos worker process (the production path of ``kairos worker``)."""

from __future__ import annotations

import logging

import faust

from streams.pipeline.app import KairosApp
from streams.pipeline.topics import ensure_topics
from streams.settings import KairosSettings


def run_worker(settings: KairosSettings) -> None:
    """Create missing topics, then run the Faust worker until SIGINT/SIGTERM."""
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

    worker = faust.Worker(kairos.app, loglevel=level, quiet=True)
    worker.execute_from_commandline()
