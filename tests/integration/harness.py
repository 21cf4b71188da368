"""Test harness: isolated settings per test, real worker processes, Redis and Kafka helpers."""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import redis
from kafka import KafkaConsumer, KafkaProducer

from streams.pipeline.counters import OUTCOMES
from streams.pipeline.keys import RedisKeys
from streams.pipeline.topics import ensure_topics
from streams.pipeline.views import redis_client
from streams.settings import KairosSettings, TopicNames
from streams.tools.devstack import DevStack
from streams.tools.processes import WorkerProcess, settings_env  # noqa: F401 (re-exported for tests)

#: Worker metrics a timed-out wait prints: the ingest's standing and alignment, the stages' standing, what the
#: write fence skipped, what fails and why the worker is not ready.
WORKER_DIAGNOSTICS = ("align_", "ingest_", "stage_", "fetch_", "stale_events_skipped", "offsets_skipped", "failing",
                      "not_ready")
#: Routine log lines (a timer's round) a timed-out wait leaves out of the worker log it prints.
ROUTINE_LOG_LINES = ("sync round took", "publication took")


def notable_lines(log: str, limit: int = 6000) -> str:
    """The end of a worker log without its routine timer lines: what a failed wait shows of each worker."""
    lines = [line for line in log.splitlines() if not any(routine in line for routine in ROUTINE_LOG_LINES)]
    return "\n".join(lines)[-limit:]


def isolated_settings(stack: DevStack, partitions: int = 4, **overrides: Any) -> KairosSettings:
    """Settings with topic, group and key names no other test uses."""
    tag = f"t{uuid.uuid4().hex[:10]}"
    topics = TopicNames(**{name: f"{tag}-{default}" for name, default in TopicNames().model_dump().items()})
    overrides.setdefault("sales_idle_path_seconds", 5.0)  # small streams: the last windows close sooner
    return KairosSettings(
        kafka_bootstrap=stack.kafka_bootstrap, redis_url=overrides.pop("redis_url", stack.redis_url), prefix=tag,
        app_id=tag, topics=topics, partitions=partitions, metrics_flush_seconds=0.25, **overrides,
    )


@dataclass
class Pipeline:
    """One isolated Kairos deployment on the shared dev stack."""

    stack: DevStack
    settings: KairosSettings
    workdir: Path
    workers: list[WorkerProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        ensure_topics(self.settings)
        self.keys = RedisKeys(self.settings.prefix)
        self.redis = redis_client(self.settings, asynchronous=False, decode_responses=True)
        self.producer = KafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap, linger_ms=5, acks="all",
            max_request_size=4 << 20,
        )

    def start_worker(self) -> WorkerProcess:
        worker = WorkerProcess(self.settings, self.workdir / f"worker-{len(self.workers)}.log").start()
        self.workers.append(worker)
        return worker

    def send(self, topic: str, value: bytes | dict, key: str | None = None) -> None:
        payload = value if isinstance(value, bytes) else json.dumps(value).encode()
        self.producer.send(topic, payload, key=key.encode() if key is not None else None)

    def send_events(self, events: Iterable[tuple[str, dict]], rate: float = 0.0) -> int:
        """Send ``(event_type, wire dict)`` pairs to their topics, keyed per the contract.

        ``rate`` > 0 paces the sending (events per second).
        """
        sent = 0
        started = time.monotonic()
        for event_type, value in events:
            key = value.get({"labels": "payment_id", "inventory": "sku"}.get(event_type, "customer_id"))
            self.send(getattr(self.settings.topics, event_type), value, key)
            sent += 1
            if rate and sent % 100 == 0:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
        self.producer.flush()
        return sent

    def ingest_counts(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.redis.hgetall(self.keys.metrics("ingest")).items()}

    def wait_until(self, condition: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            for worker in self.workers:
                assert worker.alive() or worker.process is None or worker.stopped, (
                    f"worker died:\n{worker.log()[-4000:]}")
            time.sleep(0.1)
        logs = "\n".join(notable_lines(w.log()) for w in self.workers)
        partitions = self.redis.hgetall(self.keys.metrics("ingest-partitions"))
        # Each live worker's ingest (lag, what its event-time alignment buffers and which partitions hold it back)
        # and stages (committed/end per internal partition, events skipped, what fails, why not ready).
        ingest = {key: {k: v for k, v in self.redis.hgetall(key).items() if k.startswith(WORKER_DIAGNOSTICS)}
                  for key in self.redis.scan_iter(self.keys.metrics("worker:*"))}
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; counts={self.ingest_counts()}; "
                             f"per partition={partitions}; workers' ingest={ingest}\n{logs}")

    def wait_for_customer_views(self, expected: dict[str, dict[str, str]], timeout: float = 30.0,
                                stored_id: Callable[[str], str] = lambda customer: customer,
                                what: str = "customer views equal to those of the events") -> None:
        """Wait until every customer's view holds ``expected``'s fields (see :func:`expected_views`), under the id
        the pipeline stores it by (``stored_id``: the pseudonym when the run pseudonymizes)."""
        self.wait_until(lambda: all(
            {k: self.redis.hget(self.keys.customer(stored_id(c)), k) for k in view} == view
            for c, view in expected.items()), timeout, what)

    def wait_for_outcomes(self, expected: int, timeout: float = 90.0) -> dict[str, int]:
        """Wait until processed + invalid + duplicate over all topics reaches ``expected``."""
        def total() -> int:
            return sum(v for k, v in self.ingest_counts().items() if k.rsplit(".", 1)[-1] in OUTCOMES)
        self.wait_until(lambda: total() >= expected, timeout, f"{expected} ingest outcomes")
        return self.ingest_counts()

    def read_topic(self, topic: str, expected: int, timeout: float = 30.0) -> list[Any]:
        """Read ``expected`` records from the start of ``topic`` (fails if fewer arrive)."""
        consumer = KafkaConsumer(
            topic, bootstrap_servers=self.settings.kafka_bootstrap, auto_offset_reset="earliest",
            enable_auto_commit=False, group_id=None, consumer_timeout_ms=1000,
            max_partition_fetch_bytes=4 << 20,
        )
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        try:
            while len(records) < expected and time.monotonic() < deadline:
                records.extend(consumer)
        finally:
            consumer.close()
        return records

    def send_killing_the_worker_mid_stream(self, events: list[tuple[str, dict]], warmup: int, rate: float) -> None:
        """Send ``events`` to the running worker, SIGKILL it once a third are counted and start another: the first
        ``warmup`` events before the traffic flows (a slow start would find the whole stream waiting and process it
        before the kill; seen in CI: all 4,257 counted at the first look), the rest at ``rate`` events/s."""
        self.send_events(events[:warmup])
        self.wait_for_outcomes(warmup, timeout=120)
        sender = threading.Thread(target=self.send_events, args=(events[warmup:], rate))
        sender.start()
        self.wait_for_outcomes(len(events) // 3, timeout=120)
        self.workers[0].kill()
        assert sum(self.ingest_counts().values()) < len(events), "the kill must land mid-stream"
        self.start_worker()
        sender.join()

    def close(self) -> None:
        for worker in self.workers:  # all at once: each takes a few seconds to leave its groups
            if worker.alive():
                worker.process.send_signal(signal.SIGTERM)
        for worker in self.workers:
            worker.stop()
        self.producer.close()
        self.redis.close()




def ready_answer(port: int) -> tuple[int, dict]:
    """A worker's ``/ready/``: HTTP status and body (0 and {} when it does not answer)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready/", timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
    except OSError:
        return 0, {}


def iso(ts: float) -> str:
    """Epoch seconds as the wire's ISO-8601 UTC string with milliseconds."""
    from datetime import timezone

    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def shop_events(count: int, customers: int, seed: int = 1, start: float = 1_795_000_000.0) -> list[tuple[str, dict]]:
    """A small deterministic mix of valid clicks, orders and payments (wire dicts)."""
    import random

    rng = random.Random(seed)
    events: list[tuple[str, dict]] = []
    ts = start
    for i in range(count):
        ts += rng.uniform(0.0, 2.0)
        customer = f"cust-{rng.randrange(customers):04d}"
        roll = rng.random()
        if roll < 0.7:
            events.append(("clicks", {
                "event_id": f"c-{seed}-{i}", "ts": iso(ts), "customer_id": customer,
                "session_id": f"s-{customer}-{i // 50}", "action": rng.choice(["view", "search", "add_to_cart"]),
                "sku": f"SKU-{rng.randrange(40):03d}", "price": round(rng.uniform(1, 80), 2),
            }))
        elif roll < 0.85:
            lines = [{"sku": f"SKU-{rng.randrange(40):03d}", "quantity": rng.randint(1, 3),
                      "unit_price": round(rng.uniform(1, 80), 2), "category": "toys"}
                     for _ in range(rng.randint(1, 4))]
            events.append(("orders", {
                "event_id": f"o-{seed}-{i}", "order_id": f"ord-{seed}-{i}", "ts": iso(ts),
                "customer_id": customer, "currency": "EUR", "lines": lines,
            }))
        else:
            events.append(("payments", {
                "event_id": f"p-{seed}-{i}", "payment_id": f"pay-{seed}-{i}", "order_id": f"ord-{seed}-{i}",
                "ts": iso(ts), "customer_id": customer, "amount": round(rng.uniform(5, 300), 2),
                "currency": "EUR", "method": "card",
            }))
    return events


def expected_views(events: list[tuple[str, dict]]) -> dict[str, dict[str, str]]:
    """Per-customer counts computed directly from the events (no Kairos code)."""
    views: dict[str, dict] = defaultdict(lambda: {"orders": 0, "clicks": 0, "payments": 0, "spend": 0.0, "last": 0.0})
    seen = set()
    for event_type, event in events:
        if event["event_id"] in seen:
            continue
        seen.add(event["event_id"])
        view = views[event["customer_id"]]
        view[event_type] += 1
        if event_type == "orders":
            view["spend"] += sum(line["quantity"] * line["unit_price"] for line in event["lines"])
        view["last"] = max(view["last"], datetime.fromisoformat(event["ts"]).timestamp())
    return {
        customer: {"orders": str(v["orders"]), "clicks": str(v["clicks"]), "payments": str(v["payments"]),
                   "spend": f"{v['spend']:.2f}", "last_seen": f"{v['last']:.3f}"}
        for customer, v in views.items()
    }


def keys_mentioning(client: redis.Redis, prefix: str, marker: str) -> list[str]:
    """Keys under ``prefix`` whose name, hash fields and values, string value or stream entries contain
    ``marker`` (``client`` decodes responses)."""
    found = []
    for key in client.scan_iter(f"{prefix}:*"):
        kind = client.type(key)
        if kind == "hash":
            contents = [part for pair in client.hgetall(key).items() for part in pair]
        elif kind == "string":
            contents = [client.get(key) or ""]
        elif kind == "stream":
            contents = [part for _, fields in client.xrange(key) for pair in fields.items() for part in pair]
        else:
            contents = []
        if any(marker in part for part in [key, *contents]):
            found.append(key)
    return found
