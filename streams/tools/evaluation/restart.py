"""A real worker with N customers: its RSS, and how long a restart takes (changelog recovery).

Starts its own Tansu and redis-server (:class:`~streams.tools.faults.Deployment`),
sends one valid click for each of ``N`` unique customers, runs one
``kairos worker`` until every click is counted, reads its RSS, SIGKILLs it and
starts it again. Reported: how long the first run took to count the clicks;
the worker's RSS then (and what the same worker held with no customer, right
after its first start); after the restart, the seconds until the worker logged
``Ready`` (it has read the ``customers`` changelog back) and until a click sent
after the restart is counted (it works again); and its RSS after recovery.

Run::

    python -m streams.tools.evaluation.restart --customers 100000 1000000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from streams.tools.faults import Deployment, process_rss

START = 1_795_000_000.0


def click(index: int, ts: float) -> bytes:
    """One valid click of customer ``index`` (the wire format)."""
    when = datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return json.dumps({"event_id": f"e{index}", "ts": when, "customer_id": f"c{index:08d}",
                       "session_id": f"s{index}", "action": "view", "sku": f"SKU-{index % 400:03d}",
                       "price": 9.5}).encode()


def send_clicks(deployment: Deployment, first: int, count: int) -> None:
    producer = KafkaProducer(bootstrap_servers=deployment.settings.kafka_bootstrap, linger_ms=20, acks=1,
                             batch_size=1 << 20, max_request_size=4 << 20)
    topic = deployment.settings.topics.clicks
    try:
        for index in range(first, first + count):
            producer.send(topic, click(index, START + index * 0.01), key=f"c{index:08d}".encode())
        producer.flush()
    finally:
        producer.close()


def wait_counted(deployment: Deployment, expected: int, timeout: float) -> float:
    """Seconds until ``expected`` outcomes are counted (raises after ``timeout``)."""
    started = time.monotonic()
    while deployment.counted() < expected:
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{deployment.counted()} of {expected} counted after {timeout:.0f} s")
        deployment.restart_exited()
        time.sleep(0.5)
    return time.monotonic() - started


def measure(customers: int, workdir: Path, timeout: float) -> dict[str, Any]:
    deployment = Deployment.start(workdir, appendonly=False)
    try:
        worker = deployment.start_worker()
        deployment.wait_ready(120)
        idle_rss = process_rss(worker.process.pid)
        sent_at = time.monotonic()
        send_clicks(deployment, 0, customers)
        send_seconds = time.monotonic() - sent_at
        counting = wait_counted(deployment, customers, timeout)
        time.sleep(3 * deployment.settings.metrics_flush_seconds + deployment.settings.snapshot_seconds)
        loaded_rss = process_rss(worker.process.pid)
        readies = worker.starts_ready()
        worker.kill()
        restarted = time.monotonic()
        worker.start()
        while worker.starts_ready() <= readies:
            if time.monotonic() - restarted > timeout:
                raise TimeoutError("the restarted worker was not ready in time")
            time.sleep(0.1)
        ready_seconds = time.monotonic() - restarted
        send_clicks(deployment, customers, 1)
        wait_counted(deployment, customers + 1, timeout)
        working_seconds = time.monotonic() - restarted
        return {
            "customers": customers,
            "send_seconds": round(send_seconds, 1),
            "first_run_seconds": round(counting, 1),
            "rss_idle_mib": round(idle_rss / 2**20, 1),
            "rss_loaded_mib": round(loaded_rss / 2**20, 1),
            "rss_per_customer_bytes": round((loaded_rss - idle_rss) / customers),
            "restart_ready_seconds": round(ready_seconds, 1),
            "restart_working_seconds": round(working_seconds, 1),
            "rss_after_restart_mib": round(process_rss(worker.process.pid) / 2**20, 1),
            "worker_exits": deployment.exits,
        }
    finally:
        deployment.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[100_000])
    parser.add_argument("--timeout", type=float, default=1800.0, help="Longest wait for any step (s).")
    args = parser.parse_args()
    for customers in args.customers:
        with tempfile.TemporaryDirectory(prefix="kairos-restart-") as folder:
            print(json.dumps(measure(customers, Path(folder), args.timeout)), flush=True)


if __name__ == "__main__":
    main()
