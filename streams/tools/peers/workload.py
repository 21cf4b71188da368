"""A workload: a folder of JSON Lines per topic, loaded as the events every system of the bench is given.

The files are named after the event types (``clicks.jsonl``, ``orders.jsonl``,
``payments.jsonl``, ``labels.jsonl``), as ``kairos simulate --out`` writes
them; a missing file is a topic without events. Each line is sent as it is
(its bytes), keyed as producers key them (``customer_id``; ``payment_id`` for
labels). The topics are merged in event-time order (``ts``), as a live shop
sends them; a line that is not a JSON object with a readable ``ts`` (a bad
message) keeps its place after the line before it in its file, and has no key.
"""

from __future__ import annotations

import heapq
import json
from datetime import datetime
from pathlib import Path
from typing import Iterator

#: Event type -> the field its messages are keyed by.
KEY_FIELDS = {"clicks": "customer_id", "orders": "customer_id", "payments": "customer_id", "labels": "payment_id"}


def _timed(event_type: str, path: Path) -> Iterator[tuple[float, int, str, str, bytes]]:
    """``(ts, line number, event type, key, line)`` per line of one file."""
    ts = float("-inf")
    with path.open("rb") as handle:
        for number, line in enumerate(handle):
            line = line.rstrip(b"\r\n")
            if not line:
                continue
            key = ""
            try:
                value = json.loads(line)
                key = str(value.get(KEY_FIELDS[event_type], ""))
                ts = max(ts, datetime.fromisoformat(value["ts"].replace("Z", "+00:00")).timestamp())
            except (ValueError, TypeError, KeyError, AttributeError):
                pass  # a bad message: sent as it is, in its place
            yield ts, number, event_type, key, line


def read_workload(folder: Path) -> list[tuple[str, str, bytes]]:
    """``(event type, key, value bytes)`` of every line under ``folder``, merged by event time.

    Within a file the order is kept (a file's later event dated earlier is merged at its predecessor's time).
    """
    files = [(event_type, folder / f"{event_type}.jsonl") for event_type in KEY_FIELDS]
    present = [(event_type, path) for event_type, path in files if path.exists()]
    if not present:
        raise FileNotFoundError(f"no {', '.join(f'{t}.jsonl' for t in KEY_FIELDS)} in {folder}")
    merged = heapq.merge(*(_timed(event_type, path) for event_type, path in present))
    return [(event_type, key, line) for _, _, event_type, key, line in merged]
