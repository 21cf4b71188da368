"""What one customer costs a worker: RSS and tracemalloc per customer, part by part.

Builds, in a fresh process per size, what a customers-stage worker holds for
``N`` unique customers who each sent one valid click (the independent
harness of issue 22: 500,000 unique customers of valid clicks): each click is
decoded from JSON as the stage receives it, goes through the replay guard
(applied offset, recent event ids) and is folded into a
:class:`~streams.pipeline.customers.CustomerState`; the state is held as the
``customers`` table holds it (the table's dict, the guarded store's changelog
offset and key partition per key); the customer's vector is learned by the
live :class:`~models.segmentation.Segmenter` (reservoir of
``KAIROS_SEGMENT_CAPACITY`` customers) in batches of 500, as the stage does.

Reported per customer: the growth of the process's resident set (RSS, read
from ``/proc/self/status``) and, in a second run under ``tracemalloc``, the
bytes still allocated, grouped by the module that allocated them.

Run::

    python -m streams.tools.evaluation.memory --customers 100000 500000

It only uses APIs that exist since the commit where memory was first measured
(``56fbb75``), so the same file measures "before" on a checkout of that commit.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

import orjson

from models.segmentation import CustomerFeatures, Segmenter
from streams.pipeline.customers import CustomerState
from streams.settings import KairosSettings

BATCH = 500
PARTITIONS = 4
PATHS = [f"clicks:{p}" for p in range(PARTITIONS)]


def rss_bytes() -> int:
    """This process's resident set size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def click(i: int) -> bytes:
    """One valid click of customer ``i`` (36-character ids, as shops send them)."""
    return orjson.dumps({
        "event_id": str(uuid.UUID(int=(i << 1) | 1)), "ts": 1_764_000_000.0 + i * 0.5,
        "customer_id": f"customer-{i:09d}", "session_id": str(uuid.UUID(int=(i << 1) | 2 ** 100)),
        "action": "view", "sku": f"SKU-{i % 5000:05d}", "category": "toys", "price": 10.0 + i % 90,
    })


def build(customers: int) -> dict[str, Any]:
    """Hold ``customers`` one-click customers as the customers stage does; what remains held."""
    settings = KairosSettings()
    table: dict[str, Any] = {}
    changelog_offsets: dict[str, int] = {}
    key_partition: dict[str, int] = {}
    segmenter = Segmenter(k=settings.segment_k, warmup=settings.segment_warmup,
                          capacity=settings.segment_capacity, refine_every=None, features=CustomerFeatures.FEATURES)
    for start in range(0, customers, BATCH):
        vectors = {}
        for i in range(start, min(start + BATCH, customers)):
            record = orjson.loads(click(i))
            partition = i % PARTITIONS
            state = CustomerState.new(settings.dedupe_ids_per_customer, settings.segment_half_life_days)
            state.applied.fresh(PATHS[partition], i)
            state.recent.seen_before(record["event_id"])
            state.apply("clicks", record)
            customer_id = record["customer_id"]
            table[customer_id] = state
            changelog_offsets[customer_id] = i
            key_partition[customer_id] = partition
            vectors[customer_id] = state.features.vector(record["ts"])
        segmenter.learn_many(vectors)
    return {"table": table, "offsets": changelog_offsets, "partitions": key_partition, "segmenter": segmenter}


def measure(customers: int, traced: bool) -> dict[str, Any]:
    """Build ``customers`` in this process; RSS growth (and traced bytes by module) per customer."""
    gc.collect()
    if traced:
        tracemalloc.start()
    before = rss_bytes()
    started = time.perf_counter()
    held = build(customers)
    gc.collect()
    figures: dict[str, Any] = {"customers": customers, "seconds": round(time.perf_counter() - started, 1)}
    if traced:
        snapshot = tracemalloc.take_snapshot()
        tracemalloc.stop()
        by_module: dict[str, int] = {}
        for stat in snapshot.statistics("filename"):
            name = stat.traceback[0].filename
            for marker in ("/models/", "/streams/"):
                if marker in name:
                    name = name[name.rindex(marker) + 1:]
                    break
            else:
                name = Path(name).name
            by_module[name] = by_module.get(name, 0) + stat.size
        total = sum(by_module.values())
        figures["traced_bytes_per_customer"] = round(total / customers)
        figures["traced_by_module"] = {name: round(size / customers) for name, size in
                                       sorted(by_module.items(), key=lambda item: -item[1]) if size / customers >= 1}
    else:
        figures["rss_bytes_per_customer"] = round((rss_bytes() - before) / customers)
        figures["rss_mib"] = round(rss_bytes() / 2**20)
    figures["segmenter_customers"] = held["segmenter"].metrics()["customers"]
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[100_000, 500_000])
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one, args.traced)))
        return
    for customers in args.customers:
        for traced in (False, True):  # each in a fresh process, so one run's heap does not flatter the next
            command = [sys.executable, "-m", "streams.tools.evaluation.memory", "--one", str(customers)]
            output = subprocess.run(command + (["--traced"] if traced else []), check=True,
                                    capture_output=True, text=True).stdout
            print(output.strip(), flush=True)


if __name__ == "__main__":
    main()
