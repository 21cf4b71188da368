"""``kairos simulate``: the simulated shop, sent to Kafka or written to files."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path
from typing import Any

from rich.progress import Progress

from streams.settings import KairosSettings
from streams.tools.producer import ensure_kairos_topics
from streams.tools.sender import SendStats, send_paced
from streams.tools.simulation import ShopSimulator, SimulatorConfig


def simulate(settings: KairosSettings, config: dict[str, Any], rate: float, limit: int | None,
             truth: Path | None, out: Path | None) -> str:
    """Run the simulator; return a one-line summary."""
    simulator = ShopSimulator(SimulatorConfig(**config))
    events = ((e.topic, e.key, e.value) for e in simulator.events())
    if limit is not None:
        events = itertools.islice(events, limit)
    if out is not None:
        counts = write_jsonl(events, out)
        summary = f"wrote {sum(counts.values()):,} events to {out}: {counts}"
    else:
        ensure_kairos_topics(settings)
        with Progress() as progress:
            task = progress.add_task("sending", total=limit)

            def show(stats: SendStats) -> None:
                progress.update(task, completed=stats.total,
                                description=f"sending {stats.rate():,.0f}/s")

            stats = asyncio.run(send_paced(settings, events, rate=rate, on_progress=show))
        summary = f"sent {stats.total:,} events at {stats.rate():,.0f}/s: {stats.sent}"
    if truth is not None:
        truth.write_text(json.dumps(simulator.ground_truth(), indent=1))
        summary += f"; ground truth in {truth}"
    return summary


def write_jsonl(events: Any, folder: Path) -> dict[str, int]:
    """One JSON Lines file per event type (``clicks.jsonl`` ...); bad chaos bytes kept as-is."""
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, Any] = {}
    counts: dict[str, int] = {}
    try:
        for event_type, _key, value in events:
            handle = files.get(event_type)
            if handle is None:
                handle = files[event_type] = (folder / f"{event_type}.jsonl").open("wb")
            line = value if isinstance(value, bytes) else json.dumps(value).encode()
            handle.write(line.replace(b"\n", b" ") + b"\n")
            counts[event_type] = counts.get(event_type, 0) + 1
    finally:
        for handle in files.values():
            handle.close()
    return counts
