"""``kairos chaos``: the same events through ordinary operations and faults, compared with a fault-free run.

Each run starts its own Tansu broker and redis-server (so Redis can be
stopped and restarted on its port), real ``kairos worker`` processes, and
sends one seeded simulated shop at a steady rate. At a set share of the
stream a fault is applied (see :data:`SCENARIOS`). When every event is
counted (or nothing moved for ``settle_timeout`` seconds) the exact view
families are read and compared with the fault-free reference run of the same
events:

* ``customers``: every ``customer:{id}`` hash (all fields but ``updated_at``);
* ``ingest``: the ``metrics:ingest`` counters (processed / invalid / duplicate per topic);
* ``risk_payments``: the set of payment ids with a risk view;
* ``alert_ids``: the set of alert ids on the ``alerts`` topic. Reported, but not part of
  "exact": a risk alert depends on the risk model's weights, which workers merge on a wall-clock
  sync round, so which payments alert still depends on timing and on the worker count (the
  event-time issue), not only on whether events were lost.

A worker that exits during a run is counted (``exits``) and started again, so
that a crash shows up both as a crash and as whatever it lost.
"""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from kafka import KafkaConsumer, KafkaProducer

from streams.pipeline.counters import OUTCOMES
from streams.pipeline.keys import RedisKeys
from streams.pipeline.topics import ensure_topics
from streams.settings import KairosSettings, TopicNames
from streams.tools.devstack import ManagedProcess, start_redis, start_tansu
from streams.tools.processes import WorkerProcess

#: Families compared with the reference run; a run is exact when the first three equal it.
FAMILIES = ("customers", "ingest", "risk_payments", "alert_ids")
EXACT_FAMILIES = FAMILIES[:3]


@dataclass
class Deployment:
    """One run's broker, Redis, settings and workers."""

    workdir: Path
    settings: KairosSettings
    broker: ManagedProcess
    redis_server: ManagedProcess
    appendonly: bool
    workers: list[WorkerProcess] = field(default_factory=list)
    exits: int = 0

    @classmethod
    def start(cls, workdir: Path, appendonly: bool, **overrides: Any) -> Deployment:
        workdir.mkdir(parents=True, exist_ok=True)
        broker = start_tansu(workdir)
        redis_server = start_redis(workdir, appendonly=appendonly)
        tag = f"c{uuid.uuid4().hex[:8]}"
        topics = TopicNames(**{name: f"{tag}-{default}" for name, default in TopicNames().model_dump().items()})
        settings = KairosSettings(
            kafka_bootstrap=f"127.0.0.1:{broker.port}", redis_url=f"redis://127.0.0.1:{redis_server.port}/0",
            prefix=tag, app_id=tag, topics=topics, **overrides)
        ensure_topics(settings)
        return cls(workdir, settings, broker, redis_server, appendonly)

    @property
    def keys(self) -> RedisKeys:
        return RedisKeys(self.settings.prefix)

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.settings.redis_dsn(), decode_responses=True, socket_timeout=10)

    def start_worker(self) -> WorkerProcess:
        worker = WorkerProcess(self.settings, self.workdir / f"worker-{len(self.workers)}.log").start()
        self.workers.append(worker)
        return worker

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Wait until every worker has joined and recovered (Faust logs "Worker ready")."""
        deadline = time.monotonic() + timeout
        while not all("Worker ready" in worker.log() for worker in self.workers):
            if time.monotonic() > deadline:
                raise TimeoutError(f"workers not ready after {timeout:.0f} s")
            time.sleep(0.2)

    def restart_exited(self) -> None:
        """Start again any worker that exited by itself (counted in ``exits``)."""
        for worker in self.workers:
            if worker.process is not None and not worker.alive() and not worker.stopped:
                self.exits += 1
                worker.start()

    def stop_redis(self) -> None:
        self.redis_server.stop()

    def start_redis_again(self) -> None:
        self.redis_server = start_redis(self.workdir, self.redis_server.port, appendonly=self.appendonly)

    def counted(self) -> int:
        try:
            counts = self.client().hgetall(self.keys.metrics("ingest"))
        except redis.RedisError:
            return -1
        return sum(int(v) for k, v in counts.items() if k.rsplit(".", 1)[-1] in OUTCOMES)

    def close(self) -> None:
        for worker in self.workers:
            worker.stop(10)
        self.redis_server.stop()
        self.broker.stop()


def send_events(settings: KairosSettings, events: list[tuple[str, str, Any]], rate: float,
                at: Callable[[int], None] = lambda sent: None) -> None:
    """Send ``(event_type, key, value)`` at ``rate`` events/s; ``at(sent)`` is called every 100 events."""
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=5, acks="all",
                             max_request_size=4 << 20)
    started = time.monotonic()
    try:
        for sent, (event_type, key, value) in enumerate(events, 1):
            payload = value if isinstance(value, bytes) else json.dumps(value).encode()
            producer.send(getattr(settings.topics, event_type), payload, key=key.encode())
            if sent % 100 == 0:
                at(sent)
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
        producer.flush()
    finally:
        producer.close()


def dump(deployment: Deployment) -> dict[str, Any]:
    """The exact view families of a deployment, as comparable values."""
    client, keys = deployment.client(), deployment.keys
    customers = {}
    for key in client.scan_iter(keys.customer("*"), count=1000):
        view = client.hgetall(key)
        view.pop("updated_at", None)
        customers[key.split(keys.separator, 2)[-1]] = view
    risk_prefix = keys.risk_payment("")
    risk = {key[len(risk_prefix):] for key in client.scan_iter(keys.risk_payment("*"), count=1000)}
    ingest = client.hgetall(keys.metrics("ingest"))
    return {"customers": customers, "ingest": ingest, "risk_payments": risk,
            "alert_ids": read_alert_ids(deployment.settings)}


def read_alert_ids(settings: KairosSettings) -> set[str]:
    """The id of every alert on the ``alerts`` topic, from its start."""
    consumer = KafkaConsumer(settings.topics.alerts, bootstrap_servers=settings.kafka_bootstrap,
                             auto_offset_reset="earliest", enable_auto_commit=False, group_id=None,
                             consumer_timeout_ms=3000)
    try:
        return {record.key.decode() for record in consumer if record.key}
    finally:
        consumer.close()


def differences(found: dict[str, Any], reference: dict[str, Any]) -> dict[str, int]:
    """Per family, how many entries differ from the reference (missing, extra or changed)."""
    result = {}
    for family in FAMILIES:
        mine, theirs = found[family], reference[family]
        if isinstance(mine, set):
            result[family] = len(mine ^ theirs)
        else:
            result[family] = sum(mine.get(key) != theirs.get(key) for key in set(mine) | set(theirs))
    return result


def diff_examples(found: dict[str, Any], reference: dict[str, Any], limit: int = 3) -> dict[str, list]:
    """A few differing entries per family (for the log of a failed run)."""
    examples: dict[str, list] = {}
    for family in FAMILIES:
        mine, theirs = found[family], reference[family]
        if isinstance(mine, set):
            examples[family] = sorted(mine ^ theirs)[:limit]
        else:
            keys = sorted(key for key in set(mine) | set(theirs) if mine.get(key) != theirs.get(key))
            examples[family] = [(key, theirs.get(key), mine.get(key)) for key in keys[:limit]]
    if "diagnostics" in found:
        examples["diagnostics"] = [found["diagnostics"]]
    return {family: found for family, found in examples.items() if found}


@dataclass
class Fault:
    """What a scenario does: how many workers at the start, and the action at ``at`` of the stream."""

    workers: int
    action: Callable[[Deployment], None] = lambda deployment: None
    at: float = 0.4
    #: Redis keeps its data across a restart (AOF) in this scenario.
    appendonly: bool = False
    #: How long a second action waits after the first (``None``: none).
    then: Callable[[Deployment], None] | None = None
    then_at: float = 0.7


def stop_last_worker(deployment: Deployment) -> None:
    worker = deployment.workers[-1]
    code = worker.stop(60)
    if code not in (0, None):
        raise RuntimeError(f"the graceful stop exited with code {code}:\n{worker.log()[-3000:]}")


def restart_redis(down_seconds: float) -> Callable[[Deployment], None]:
    def action(deployment: Deployment) -> None:
        deployment.stop_redis()
        time.sleep(down_seconds)
        deployment.start_redis_again()
    return action


SCENARIOS: dict[str, Fault] = {
    "reference": Fault(1),
    "three-workers": Fault(3),
    "graceful-stop": Fault(2, stop_last_worker),
    "worker-added": Fault(1, lambda d: d.start_worker()),
    "two-three-two": Fault(2, lambda d: d.start_worker(), at=0.3, then=stop_last_worker, then_at=0.6),
    "redis-restart-aof": Fault(1, restart_redis(15.0), appendonly=True),
    "redis-restart-empty": Fault(1, restart_redis(5.0)),
}


@dataclass
class RunResult:
    scenario: str
    repetition: int
    events: int
    counted: int
    exits: int
    seconds: float
    differences: dict[str, int]
    examples: dict[str, list]

    @property
    def exact(self) -> bool:
        return self.counted == self.events and not any(self.differences[f] for f in EXACT_FAMILIES)

    def row(self) -> str:
        diffs = " ".join(f"{family}={n}" for family, n in self.differences.items())
        return (f"{self.scenario:<20} #{self.repetition:<2} counted {self.counted}/{self.events} exits {self.exits} "
                f"{diffs} {'EXACT' if self.exact else 'DIFFERS'} ({self.seconds:.0f} s)")


def run_scenario(name: str, events: list[tuple[str, str, Any]], workdir: Path, rate: float,
                 settle_timeout: float = 60.0, **overrides: Any) -> tuple[dict[str, Any], int, int]:
    """Run ``events`` through scenario ``name``; the dump, the count reached and the worker exits."""
    fault = SCENARIOS[name]
    deployment = Deployment.start(workdir, fault.appendonly, **overrides)
    try:
        for _ in range(fault.workers):
            deployment.start_worker()
        deployment.wait_ready()  # a fault must land on running workers, not on workers starting up
        total = len(events)
        triggers = [(int(total * fault.at), fault.action)]
        if fault.then is not None:
            triggers.append((int(total * fault.then_at), fault.then))
        actions: list[threading.Thread] = []

        def at(sent: int) -> None:
            deployment.restart_exited()
            while triggers and sent >= triggers[0][0]:
                _, action = triggers.pop(0)
                thread = threading.Thread(target=action, args=(deployment,))
                thread.start()
                actions.append(thread)

        send_events(deployment.settings, events, rate, at)
        for thread in actions:
            thread.join()
        last, moved = -1, time.monotonic()
        while time.monotonic() - moved < settle_timeout:
            deployment.restart_exited()
            counted = deployment.counted()
            if counted != last:
                last, moved = counted, time.monotonic()
            if counted >= total:
                break
            time.sleep(0.5)
        time.sleep(3 * max(deployment.settings.metrics_flush_seconds, 1.0))  # views and counters settle
        found = dump(deployment)
        if deployment.counted() != total:
            found["diagnostics"] = events_topic_order(deployment)
            found["changelog"] = customers_changelog(deployment)
        return found, deployment.counted(), deployment.exits
    finally:
        deployment.close()


def simulated_events(seed: int, customers: int, days: float) -> list[tuple[str, str, Any]]:
    """The simulated shop's stream as ``(event_type, key, value)``."""
    from streams.tools.simulation import ShopSimulator, SimulatorConfig

    simulator = ShopSimulator(SimulatorConfig(seed=seed, customers=customers, days=days))
    return [(event.topic, event.key, event.value) for event in simulator.events()]


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run_chaos(scenarios: Iterable[str], repetitions: int, events: list[tuple[str, str, Any]], workdir: Path,
              rate: float, report: Callable[[RunResult], None] = print, **overrides: Any) -> list[RunResult]:
    """The reference run, then each scenario ``repetitions`` times; one result per run.

    A SIGTERM stops it like Ctrl-C: the running deployment's workers, broker and Redis are stopped.
    """
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    reference, counted, exits = run_scenario("reference", events, workdir / "reference", rate, **overrides)
    first = RunResult("reference", 1, len(events), counted, exits, time.monotonic() - started,
                      dict.fromkeys(FAMILIES, 0), {})
    report(first)
    results = [first]
    for name in scenarios:
        for repetition in range(1, repetitions + 1):
            started = time.monotonic()
            found, counted, exits = run_scenario(name, events, workdir / f"{name}-{repetition}", rate, **overrides)
            result = RunResult(name, repetition, len(events), counted, exits, time.monotonic() - started,
                               differences(found, reference), diff_examples(found, reference))
            report(result)
            results.append(result)
    return results


def events_topic_order(deployment: Deployment) -> dict[str, Any]:
    """Diagnostics of a run that differs: how each upstream path's entries sit on ``<app>-events``.

    Reads the whole internal topic and reports, per internal partition and
    upstream path, entries whose offset is not above the highest seen before
    (``behind``: a later packet repeating or reordering a path) and offsets
    missing from the sequence (``holes``).
    """
    from streams.pipeline.packing import decode_packet

    topic = deployment.settings.internal_topics["events"]
    consumer = KafkaConsumer(topic, bootstrap_servers=deployment.settings.kafka_bootstrap,
                             auto_offset_reset="earliest", enable_auto_commit=False, group_id=None,
                             consumer_timeout_ms=3000, max_partition_fetch_bytes=8 << 20)
    highest: dict[tuple[int, str], int] = {}
    seen: dict[tuple[int, str], set[int]] = {}
    behind: dict[str, int] = {}
    index = []
    try:
        for record in consumer:
            for batch in decode_packet(record.value):
                key = (record.partition, batch.path)
                for offset, event in batch.entries:
                    if event is not None:
                        index.append((record.partition, record.offset, record.timestamp, batch.path, offset,
                                      event.get("customer_id"), event.get("event_id")))
                    if offset <= highest.get(key, -1) and offset not in seen.get(key, set()):
                        behind[f"{key[0]}:{key[1]}"] = behind.get(f"{key[0]}:{key[1]}", 0) + 1
                    highest[key] = max(highest.get(key, -1), offset)
                    seen.setdefault(key, set()).add(offset)
    finally:
        consumer.close()
    (deployment.workdir / "events-index.json").write_text(json.dumps(index))
    by_path: dict[str, set[int]] = {}
    for (_, path), offsets in seen.items():
        by_path.setdefault(path, set()).update(offsets)
    holes = {path: sorted(set(range(min(offsets), max(offsets) + 1)) - offsets)[:20]
             for path, offsets in by_path.items() if len(offsets) != max(offsets) - min(offsets) + 1}
    return {"behind_not_seen_before": behind, "holes": holes}


def customers_changelog(deployment: Deployment) -> dict[str, list]:
    """Diagnostics of a run that differs: every ``customers`` changelog record, per key, in log order.

    Saved next to the run's logs (``changelog.json``) with each record's partition, offset, clicks,
    orders, payments and applied offsets; the run's examples name the customers to look up.
    """
    import orjson

    topic = f"{deployment.settings.app_id}-customers-changelog"
    consumer = KafkaConsumer(topic, bootstrap_servers=deployment.settings.kafka_bootstrap,
                             auto_offset_reset="earliest", enable_auto_commit=False, group_id=None,
                             consumer_timeout_ms=3000, max_partition_fetch_bytes=8 << 20)
    history: dict[str, list] = {}
    try:
        for record in consumer:
            key = record.key.decode()
            state = orjson.loads(record.value) if record.value else None
            entry = [record.partition, record.offset, record.timestamp]
            if state is not None:
                entry += [{name: state.get(name) for name in ("clicks", "orders", "payments", "processed", "applied")}]
            history.setdefault(key, []).append(entry)
    finally:
        consumer.close()
    (deployment.workdir / "changelog.json").write_bytes(orjson.dumps(history))
    return {"keys": len(history)}
