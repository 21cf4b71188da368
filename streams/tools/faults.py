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
* ``features``: every customer's segmentation features as the ``customers`` changelog last holds them,
  numbers equal within a relative 1e-9 (:func:`same`): a customer's decayed sums are the same in any order of
  its events, but floating-point additions in another order change the last bits (seen: relative gaps of
  1e-15 after a broker pause, when the aligner released a topic that had fallen idle before the others;
  rounding both to 12 significant digits, as this compared before, still told 7.42185772976 from
  7.42185772977 when the gap straddled a rounding boundary);
* ``sales_inputs``: what the customers stage sent the sales stage, per upstream path and kind: how many
  distinct source offsets and a digest of their records (:func:`read_stage_inputs`; a record lost or changed
  on its way shows here, where the sales stage cannot tell it from one never sent);
* ``traffic``: every ``anomaly:{kind}:{key}`` hash (a traffic scope's latest minute: counts, score, learned
  usual values), exact: what the anomaly stage learned from the events;
* ``sessions_inputs``: the same for what the customers stage sent the sessions stage;
* ``sessions``: the sessions stage's counts (sessions started, closed, converted, ended, dropped; orders without
  a session; records applied out of event-time order), exact;
* ``alert_ids``: the set of ids of the alerts on the ``alerts`` topic that depend on event time only
  (surge, slump, restock, anomaly, abandon): exact;
* ``model_alert_ids``: the ids of the other alerts (``risk``, risk ``drift``, basket ``trend``). Reported,
  but not part of "exact": a risk alert depends on the risk model's weights, which workers merge on a
  wall-clock sync round, and a risk learner learns its paths in arrival order, so which payments alert
  still depends on timing and on the worker count; a basket trend is observed when a publication round
  (wall clock) finds an event-time window passed.

A worker that exits during a run is counted (``exits``) and started again, so
that a crash shows up both as a crash and as whatever it lost. Each run also
reports, per outage, from its end (a restart, a SIGCONT): how long until the
ingest counts again (``back``) and until it counted what had been sent by
then (``caught up``), and the largest worker's peak RSS; the samples are
saved in the run's folder (``samples.json``), with every alert record read (``alerts.json``) and every
``metrics:*`` hash (``metrics.json``: late records, records waiting, watermarks), to look into a difference.
A ``hostile`` run interleaves hostile records
(:mod:`streams.tools.hostile`) with the same valid events: its ingest counters
are compared with the reference's plus the hostile records (invalid, or
duplicate), and every invalid one must be on the dead-letter topic with a
reason.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import signal
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from streams.pipeline.counters import OUTCOMES
from streams.pipeline.keys import RedisKeys
from streams.pipeline.topics import ensure_topics
from streams.settings import KairosSettings, TopicNames
from streams.tools.devstack import ManagedProcess, start_redis, start_tansu
from streams.tools.hostile import HostileMix, interleave_hostile
from streams.tools.processes import WorkerProcess

#: Families compared with the reference run; a run is exact when all but ``model_alert_ids`` equal it.
FAMILIES = ("customers", "ingest", "risk_payments", "features", "sales_inputs", "traffic", "sessions_inputs",
            "sessions", "alert_ids", "model_alert_ids")
#: The sessions stage's counts compared exactly (sessions started, ended, learned; records applied out of order).
SESSION_COUNTS = ("sessions_started", "sessions_closed", "sessions_converted", "sessions_ended", "sessions_dropped",
                  "orders_without_session", "late_records", "released_early", "abandon_alerts")
EXACT_FAMILIES = tuple(family for family in FAMILIES if family != "model_alert_ids")
#: Alert id prefixes of the alerts that depend on wall-clock rounds or arrival order (see the module docs).
MODEL_ALERT_PREFIXES = ("risk:", "drift:risk:", "trend:")


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
    #: Events sent when each worker was killed on purpose (SIGKILL, then started again).
    kills_at: list[int] = field(default_factory=list)
    #: Events handed to the producer so far (updated by the sender).
    sent: int = 0
    #: Per outage ended: when (monotonic), how many events had been sent then, and how many the ingest had
    #: counted when it began (-1: not read; then the last sample before its end stands for it).
    outages_ended: list[tuple[float, int, int]] = field(default_factory=list)
    #: One fault at a time: a kill waits until the previous one's worker is back.
    fault_lock: threading.Lock = field(default_factory=threading.Lock)

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
        """Wait until every worker has joined, recovered and started its ingest."""
        deadline = time.monotonic() + timeout
        while not all(worker.starts_ready() for worker in self.workers):
            if time.monotonic() > deadline:
                raise TimeoutError(f"workers not ready after {timeout:.0f} s")
            time.sleep(0.2)

    def outage_ended(self, counted: int = -1) -> None:
        """Note that an outage ended now (its time to converge is measured from here); ``counted``: the ingest
        count read when it began, if read."""
        self.outages_ended.append((time.monotonic(), self.sent, counted))

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

    def worker_rss(self) -> int:
        """The largest resident set (bytes) of the running workers now."""
        largest = 0
        for worker in self.workers:
            if worker.alive():
                largest = max(largest, process_rss(worker.process.pid))
        return largest

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


def process_rss(pid: int) -> int:
    """Resident set size of process ``pid`` in bytes (0 if it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def read_hashes(client: Any, pattern: str, prefix: str) -> dict[str, dict[str, str]]:
    """Every hash whose key matches ``pattern``, by key without ``prefix``, its wall-clock ``updated_at`` left out."""
    found = {}
    for key in client.scan_iter(pattern, count=1000):
        view = client.hgetall(key)
        view.pop("updated_at", None)
        found[key[len(prefix):]] = view
    return found


def dump(deployment: Deployment) -> dict[str, Any]:
    """The exact view families of a deployment, as comparable values."""
    client, keys = deployment.client(), deployment.keys
    customers = read_hashes(client, keys.customer("*"), keys.customer(""))
    risk_prefix = keys.risk_payment("")
    risk = {key[len(risk_prefix):] for key in client.scan_iter(keys.risk_payment("*"), count=1000)}
    ingest = client.hgetall(keys.metrics("ingest"))
    # Every stage's metrics (late records, records released early, watermarks): not compared, kept to look into a
    # difference.
    metrics = {key: client.hgetall(key) for key in client.scan_iter(keys.metrics("*"), count=1000)}
    (deployment.workdir / "metrics.json").write_text(json.dumps(metrics, indent=1, sort_keys=True))
    features = read_features(deployment.settings)
    # The traffic scopes' views (counts, scores, learned usual values): the anomaly stage's output, exact.
    traffic = read_hashes(client, keys.anomaly("*", "*"), keys.anomaly("", "")[:-1])
    return {"customers": customers, "ingest": ingest, "risk_payments": risk, "features": features,
            "sales_inputs": read_stage_inputs(deployment.settings, "sales"), "traffic": traffic,
            "sessions_inputs": read_stage_inputs(deployment.settings, "sessions"),
            "sessions": {name: value for name, value in metrics.get(keys.metrics("sessions"), {}).items()
                         if name in SESSION_COUNTS},
            **split_alert_ids(read_alert_ids(deployment.settings, deployment.workdir / "alerts.json")),
            "dead_letters": read_dead_letters(deployment.settings)}


def same(mine: Any, theirs: Any) -> bool:
    """Equal, but numbers within a relative 1e-9 (sums added in another order differ in their last bits).

    >>> same({"spend": 7.421857729765}, {"spend": 7.421857729766}), same({"spend": 7.42}, {"spend": 7.43})
    (True, False)
    >>> same({"a": 1.0}, {"a": 1.0, "b": 0.0}), same("x", "x"), same(None, {"a": 1.0})
    (False, True, False)
    """
    if isinstance(mine, dict) and isinstance(theirs, dict):
        return mine.keys() == theirs.keys() and all(same(value, theirs[key]) for key, value in mine.items())
    if isinstance(mine, (int, float)) and isinstance(theirs, (int, float)):
        return math.isclose(mine, theirs, rel_tol=1e-9, abs_tol=1e-9)
    return mine == theirs


#: How long :func:`read_whole_topic` waits for more records once every partition reached its end offset.
QUIET_SECONDS = 2.0
#: After every event is counted, the event-time stages still close their last windows, minutes and sessions
#: once their paths fall idle (30 s; and a stage that moved to another worker first waits 30 s for every
#: path): the alerts topic must stay unchanged this long before a run's families are read.
ALERTS_QUIET_SECONDS = 40.0


def read_whole_topic(settings: KairosSettings, topic: str, timeout: float = 120.0,
                     **options: Any) -> Iterator[Any]:
    """Every record of ``topic`` from its start to its end now, partition by partition in offset order.

    Reads until every partition has answered a fetch, its position is at least the end offset taken at the
    start, and then nothing more came for ``QUIET_SECONDS``. Not merely until the records stop coming for a
    few seconds (a reader that gave up after a 3-second gap in a slow first fetch left alert ids out, and
    they were reported as differences between runs), and not merely up to the end offsets: Tansu reports
    the last record batch's base offset as the end, so a position at the end may still have that batch to
    read (a partition of one batch reports 0).
    """
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False, group_id=None,
                             max_partition_fetch_bytes=8 << 20, fetch_max_wait_ms=100, **options)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            return
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        deadline = time.monotonic() + timeout
        last_record = time.monotonic()
        while True:
            fetched = consumer.poll(timeout_ms=200)
            for records in fetched.values():
                yield from records
            if fetched:
                last_record = time.monotonic()
            elif time.monotonic() - last_record >= QUIET_SECONDS and all(
                    consumer.highwater(tp) is not None and consumer.position(tp) >= ends[tp] for tp in partitions):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: not read to its end offsets {ends} in {timeout:.0f} s")
    finally:
        consumer.close()


def read_features(settings: KairosSettings) -> dict[str, dict[str, float]]:
    """Every customer's segmentation features as the ``customers`` changelog last holds them (flattened)."""
    import orjson

    latest: dict[bytes, bytes | None] = {}
    for record in read_whole_topic(settings, f"{settings.app_id}-customers-changelog"):
        latest[record.key] = record.value
    found = {}
    for key, value in latest.items():
        state = orjson.loads(value) if value else None
        if not state or "features" not in state:
            continue  # a tombstone, an ingest counter or a label ledger
        features = state["features"]
        flat = {name: features[name] for name in ("first_seen", "last_seen", "last_order_at")}
        for part in ("decayed", "lifetime", "categories"):
            flat |= {f"{part}.{name}": value for name, value in features[part].items()}
        flat["sessions"] = len(features["sessions"])
        found[key.decode()] = flat
    return found


def read_stage_inputs(settings: KairosSettings, stage: str = "sales") -> dict[str, list]:
    """What the customers stage sent a downstream ``stage`` (``sales``, ``sessions``), per upstream path and kind:
    how many distinct source offsets, and a digest of their records (a record sent again after a restart counts
    once, as the stage's replay guard applies it once). A record lost or changed on its way shows here, where
    the stage itself cannot tell it from one never sent."""
    import hashlib

    import orjson

    from streams.pipeline.packing import decode_packet

    sent: dict[str, dict[int, bytes]] = {}
    tag = f"{settings.app_id}-"  # each run names its topics apart: paths compared without it
    for record in read_whole_topic(settings, settings.internal_topics[stage]):
        for batch in decode_packet(record.value):
            entries = sent.setdefault(f"{batch.event_type}@{batch.path.removeprefix(tag)}", {})
            for offset, entry in batch.entries:
                entries.setdefault(offset, orjson.dumps(entry, option=orjson.OPT_SORT_KEYS))
    return {path: [len(entries), hashlib.blake2b(b"\n".join(entries[o] for o in sorted(entries))).hexdigest()]
            for path, entries in sorted(sent.items())}


def read_dead_letters(settings: KairosSettings) -> dict[str, int]:
    """How many records the dead-letter topic holds, and how many of them carry no reason header."""
    found = {"records": 0, "without_reason": 0}
    for record in read_whole_topic(settings, settings.topics.dead_letters):
        found["records"] += 1
        reason = dict(record.headers or ()).get("kairos.reason", b"")
        found["without_reason"] += not reason
    return found


def with_hostile(reference: dict[str, Any], mix: HostileMix) -> dict[str, Any]:
    """What a run of the reference's valid events plus the hostile ``mix`` must serve: the same views, the
    ingest counters plus the hostile records (invalid or duplicate), each invalid one dead-lettered."""
    ingest = {name: int(value) for name, value in reference["ingest"].items()}
    for name, extra in mix.ingest_delta().items():
        ingest[name] = ingest.get(name, 0) + extra
    dead = reference["dead_letters"]
    return {**reference, "ingest": {name: str(value) for name, value in ingest.items()},
            "dead_letters": {"records": dead["records"] + mix.invalid(), "without_reason": 0}}


def read_alert_ids(settings: KairosSettings, save_to: Path | None = None) -> set[str]:
    """The id of every alert on the ``alerts`` topic, from its start; with ``save_to``, every alert record is
    written there too (a JSON list of partition, offset, timestamp, key and value), to look into a difference."""
    records = [record for record in read_whole_topic(settings, settings.topics.alerts) if record.key]
    if save_to is not None:
        save_to.write_text(json.dumps([[record.partition, record.offset, record.timestamp, record.key.decode(),
                                        (record.value or b"").decode(errors="replace")] for record in records]))
    return {record.key.decode() for record in records}


def split_alert_ids(ids: set[str]) -> dict[str, set[str]]:
    """Alert ids as the two families: those of event time only, and the model alerts.

    >>> split = split_alert_ids({"risk:p1", "surge:sku:A:2026", "trend:A,B:7", "drift:risk:0:4100", "abandon:s1"})
    >>> sorted(split["alert_ids"]), sorted(split["model_alert_ids"])
    (['abandon:s1', 'surge:sku:A:2026'], ['drift:risk:0:4100', 'risk:p1', 'trend:A,B:7'])
    """
    model = {alert_id for alert_id in ids if alert_id.startswith(MODEL_ALERT_PREFIXES)}
    return {"alert_ids": ids - model, "model_alert_ids": model}


def differences(found: dict[str, Any], reference: dict[str, Any]) -> dict[str, int]:
    """Per family, how many entries differ from the reference (missing, extra or changed)."""
    result = {}
    for family in FAMILIES:
        mine, theirs = found[family], reference[family]
        if isinstance(mine, set):
            result[family] = len(mine ^ theirs)
        else:
            result[family] = sum(not same(mine.get(key), theirs.get(key)) for key in set(mine) | set(theirs))
    return result


def diff_examples(found: dict[str, Any], reference: dict[str, Any], limit: int = 3) -> dict[str, list]:
    """A few differing entries per family (for the log of a failed run)."""
    examples: dict[str, list] = {}
    for family in FAMILIES:
        mine, theirs = found[family], reference[family]
        if isinstance(mine, set):
            examples[family] = sorted(mine ^ theirs)[:limit]
        else:
            keys = sorted(key for key in set(mine) | set(theirs) if not same(mine.get(key), theirs.get(key)))
            examples[family] = [(key, theirs.get(key), mine.get(key)) for key in keys[:limit]]
    if "diagnostics" in found:
        examples["diagnostics"] = [found["diagnostics"]]
    return {family: found for family, found in examples.items() if found}


@dataclass(frozen=True)
class Step:
    """An action applied once ``at`` (a share) of the stream has been sent."""

    at: float
    action: Callable[[Deployment], None]


@dataclass(frozen=True)
class Fault:
    """What a scenario does: how many workers at the start, and its steps."""

    workers: int
    steps: tuple[Step, ...] = ()
    #: Redis keeps its data across a restart (AOF) in this scenario.
    appendonly: bool = False
    #: Hostile records interleaved with the valid events (0: none).
    hostile: int = 0


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
        deployment.outage_ended()
    return action


def pause(which: str, seconds: float) -> Callable[[Deployment], None]:
    """Freeze ``which`` (``"redis"`` or ``"broker"``) with SIGSTOP for ``seconds``, then SIGCONT: a hung
    service (a GC pause, a stalled disk, a VM migration), where the connections stay open and nothing answers."""
    def action(deployment: Deployment) -> None:
        pid = (deployment.redis_server if which == "redis" else deployment.broker).process.pid
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            os.kill(pid, signal.SIGCONT)
        deployment.outage_ended()
    return action


def kill_and_restart(deployment: Deployment, timeout: float = 120.0) -> None:
    """SIGKILL the first worker and start it again; returns once the restarted worker counts events again
    (one kill at a time: a kill whose point came while the previous restart was under way waits for it, so
    every kill lands on a worker that is processing, not on one still joining its groups)."""
    with deployment.fault_lock:
        worker = deployment.workers[0]
        starts = worker.starts_ready() + 1
        worker.kill()
        deployment.kills_at.append(deployment.sent)
        counted = deployment.counted()
        worker.start()
        deployment.outage_ended(counted)
        deadline = time.monotonic() + timeout
        while worker.starts_ready() < starts and time.monotonic() < deadline:
            time.sleep(0.2)
        while deployment.counted() <= counted < deployment.sent and time.monotonic() < deadline:
            time.sleep(0.2)


def kills(count: int, seed: int = 1) -> Fault:
    """One worker SIGKILLed at ``count`` random points of the stream (5–95 %), restarted each time."""
    rng = random.Random(seed)
    points = sorted(rng.uniform(0.05, 0.95) for _ in range(count))
    return Fault(1, tuple(Step(at, kill_and_restart) for at in points))


SCENARIOS: dict[str, Fault] = {
    "reference": Fault(1),
    # The reference again: what differs between two fault-free runs is timing, not a fault.
    "fault-free": Fault(1),
    "three-workers": Fault(3),
    "graceful-stop": Fault(2, (Step(0.4, stop_last_worker),)),
    "worker-added": Fault(1, (Step(0.4, lambda d: d.start_worker()),)),
    "two-three-two": Fault(2, (Step(0.3, lambda d: d.start_worker()), Step(0.6, stop_last_worker))),
    "redis-restart-aof": Fault(1, (Step(0.4, restart_redis(15.0)),), appendonly=True),
    "redis-restart-empty": Fault(1, (Step(0.4, restart_redis(5.0)),)),
    "kills": kills(20),
    "redis-pause": Fault(1, (Step(0.4, pause("redis", 20.0)),)),
    "broker-pause": Fault(1, (Step(0.4, pause("broker", 30.0)),)),
    "hostile": Fault(1, hostile=100_000),
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
    #: Workers SIGKILLed on purpose, and how many of them while events were still being sent.
    kills: int = 0
    kills_while_sending: int = 0
    #: Seconds from the end of each outage until the ingest counted what had been sent by then (None: never).
    recoveries: list[Recovery] = field(default_factory=list)
    #: The largest worker's peak resident set, in MiB.
    peak_rss_mib: float = 0.0
    #: Dead-letter records found and expected, and how many carry no reason.
    dead_letters: dict[str, int] = field(default_factory=dict)

    @property
    def exact(self) -> bool:
        return (self.counted == self.events and not any(self.differences[f] for f in EXACT_FAMILIES)
                and self.dead_letters.get("records") == self.dead_letters.get("expected")
                and not self.dead_letters.get("without_reason"))

    def row(self) -> str:
        diffs = " ".join(f"{family}={n}" for family, n in self.differences.items())
        recovery = ""
        if self.recoveries:
            recovery = (f" back {spread([r.back for r in self.recoveries])}"
                        f" caught up {spread([r.caught_up for r in self.recoveries])}")
            last = self.recoveries[-1].caught_up
            if len(self.recoveries) > 1 and last is not None:
                recovery += f" (after the last: {last:.1f} s)"
        letters = (f" dead letters {self.dead_letters['records']}/{self.dead_letters['expected']}"
                   f" (no reason: {self.dead_letters['without_reason']})") if self.dead_letters.get("expected") else ""
        kills = f" kills {self.kills} ({self.kills_while_sending} while sending)" if self.kills else ""
        return (f"{self.scenario:<20} #{self.repetition:<2} counted {self.counted}/{self.events} exits {self.exits}"
                f"{kills} {diffs}{letters}{recovery} rss {self.peak_rss_mib:.0f} MiB "
                f"{'EXACT' if self.exact else 'DIFFERS'} ({self.seconds:.0f} s)")


@dataclass
class RunObservation:
    """What one run found: its dump, the count reached, exits, kills, convergence times and peak RSS."""

    found: dict[str, Any]
    counted: int
    exits: int
    kills_at: list[int] = field(default_factory=list)
    recoveries: list[Recovery] = field(default_factory=list)
    peak_rss: int = 0


def _watch(deployment: Deployment, samples: list[tuple[float, int]], peak: list[int],
           stop: threading.Event) -> None:
    """Sample the ingest count and the workers' RSS every half second until ``stop``."""
    while not stop.wait(0.5):
        samples.append((time.monotonic(), deployment.counted()))
        peak[0] = max(peak[0], deployment.worker_rss())


@dataclass(frozen=True)
class Recovery:
    """After one outage ended: seconds until the ingest counted again, and until it counted what had been sent
    when the outage ended (``None``: not within the run)."""

    back: float | None
    caught_up: float | None


def recoveries(outages: list[tuple[float, int, int]], samples: list[tuple[float, int]]) -> list[Recovery]:
    """Per outage ``(ended, sent then, counted when it began or -1)``, from the ingest count sampled as
    ``(when, count)`` (-1: unreadable).

    >>> recoveries([(10.0, 500, -1)], [(9.0, 480), (10.5, -1), (11.0, 490), (12.5, 520)])
    [Recovery(back=1.0, caught_up=2.5)]

    A kill's count is read when it lands: a rise written by the killed worker just before but sampled only
    after the restart is not the new worker being back.

    >>> recoveries([(10.0, 500, 490)], [(9.6, 480), (10.2, 490), (14.0, 495), (15.0, 520)])
    [Recovery(back=4.0, caught_up=5.0)]
    """
    found = []
    for ended, target, counted_then in outages:
        before = max((counted for at, counted in samples if at <= ended), default=0)
        before = max(before, counted_then)
        after = [(at - ended, counted) for at, counted in samples if at >= ended]
        found.append(Recovery(next((t for t, counted in after if counted > before), None),
                              next((t for t, counted in after if counted >= target), None)))
    return found


def spread(seconds: list[float | None]) -> str:
    """Median and largest of some durations, and how many never happened.

    >>> spread([1.0, 3.0, 2.0, None])
    'median 2.0 s max 3.0 s (1 never)'
    """
    known = [s for s in seconds if s is not None]
    text = f"median {statistics.median(known):.1f} s max {max(known):.1f} s" if known else "-"
    return text + (f" ({len(seconds) - len(known)} never)" if len(known) < len(seconds) else "")


def run_scenario(fault: Fault | str, events: list[tuple[str, str, Any]], workdir: Path, rate: float,
                 settle_timeout: float = 60.0, **overrides: Any) -> RunObservation:
    """Run ``events`` through ``fault`` (or the scenario of that name)."""
    from streams.tools.bench import wait_until_drained  # the bench's check, imported when a run needs it

    if isinstance(fault, str):
        fault = SCENARIOS[fault]
    deployment = Deployment.start(workdir, fault.appendonly, **overrides)
    samples: list[tuple[float, int]] = []
    peak = [0]
    stop_watching = threading.Event()
    watcher = threading.Thread(target=_watch, args=(deployment, samples, peak, stop_watching), daemon=True)
    try:
        for _ in range(fault.workers):
            deployment.start_worker()
        deployment.wait_ready()  # a fault must land on running workers, not on workers starting up
        watcher.start()
        total = len(events)
        triggers = [(int(total * step.at), step.action) for step in fault.steps]
        actions: list[threading.Thread] = []

        def at(sent: int) -> None:
            deployment.sent = sent
            deployment.restart_exited()
            while triggers and sent >= triggers[0][0]:
                _, action = triggers.pop(0)
                thread = threading.Thread(target=action, args=(deployment,))
                thread.start()
                actions.append(thread)

        send_events(deployment.settings, events, rate, at)
        deployment.sent = total
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
        try:  # after many restarts the single-partition stages still work through the stream once all is counted
            asyncio.run(wait_until_drained(deployment.settings, settle_timeout + 120.0, deployment.restart_exited))
        except TimeoutError:
            pass  # compared as it stands: what a stage never applied shows in the families
        wait_for_quiet_alerts(deployment, ALERTS_QUIET_SECONDS, timeout=ALERTS_QUIET_SECONDS + 120.0)
        time.sleep(3 * max(deployment.settings.metrics_flush_seconds, 1.0))  # views and counters settle
        stop_watching.set()
        (workdir / "samples.json").write_text(json.dumps({"samples": samples, "outages": deployment.outages_ended}))
        found = dump(deployment)
        counted = deployment.counted()
        if counted != total:
            found["diagnostics"] = events_topic_order(deployment)
            found["changelog"] = customers_changelog(deployment)
        return RunObservation(found, counted, deployment.exits, deployment.kills_at,
                              recoveries(deployment.outages_ended, samples), peak[0])
    finally:
        stop_watching.set()
        deployment.close()


def wait_for_quiet_alerts(deployment: Deployment, quiet: float, timeout: float) -> float:
    """Wait until the alerts topic's end offsets stayed unchanged for ``quiet`` seconds (at most ``timeout``);
    the seconds waited. Before, a run was read 3 s after its last event was counted: a stage that had moved to
    another worker (a graceful stop, a kill) published its last alerts later, and those were reported missing."""
    started = time.monotonic()
    topic = deployment.settings.topics.alerts
    consumer = KafkaConsumer(bootstrap_servers=deployment.settings.kafka_bootstrap, group_id=None)
    try:
        last, since = None, started
        while time.monotonic() - started < timeout:
            partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
            ends = sorted(consumer.end_offsets(partitions).items()) if partitions else []
            now = time.monotonic()
            if ends != last:
                last, since = ends, now
            elif now - since >= quiet:
                break
            deployment.restart_exited()
            time.sleep(1.0)
    finally:
        consumer.close()
    return time.monotonic() - started


def simulated_events(seed: int, customers: int, days: float) -> list[tuple[str, str, Any]]:
    """The simulated shop's stream as ``(event_type, key, value)``."""
    from streams.tools.simulation import ShopSimulator, SimulatorConfig

    simulator = ShopSimulator(SimulatorConfig(seed=seed, customers=customers, days=days))
    return [(event.topic, event.key, event.value) for event in simulator.events()]


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run_chaos(scenarios: Iterable[str] | dict[str, Fault], repetitions: int, events: list[tuple[str, str, Any]],
              workdir: Path, rate: float, report: Callable[[RunResult], None] = print, seed: int = 1,
              **overrides: Any) -> list[RunResult]:
    """The reference run, then each scenario ``repetitions`` times; one result per run.

    ``scenarios`` are names of :data:`SCENARIOS`, or faults by name. A SIGTERM stops it like Ctrl-C: the
    running deployment's workers, broker and Redis are stopped.
    """
    faults = scenarios if isinstance(scenarios, dict) else {name: SCENARIOS[name] for name in scenarios}
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    seen = run_scenario("reference", events, workdir / "reference", rate, **overrides)
    reference = seen.found
    no_letters = {**reference["dead_letters"], "expected": reference["dead_letters"]["records"]}
    first = RunResult("reference", 1, len(events), seen.counted, seen.exits, time.monotonic() - started,
                      dict.fromkeys(FAMILIES, 0), {}, peak_rss_mib=seen.peak_rss / (1 << 20), dead_letters=no_letters)
    report(first)
    results = [first]
    for name, fault in faults.items():
        for repetition in range(1, repetitions + 1):
            started = time.monotonic()
            stream, expected = events, reference
            if fault.hostile:
                max_bytes = overrides.get("max_event_bytes", KairosSettings().max_event_bytes)
                stream, mix = interleave_hostile(events, fault.hostile, seed + repetition, max_bytes)
                expected = with_hostile(reference, mix)
            seen = run_scenario(fault, stream, workdir / f"{name}-{repetition}", rate, **overrides)
            letters = {**seen.found["dead_letters"], "expected": expected["dead_letters"]["records"]}
            result = RunResult(name, repetition, len(stream), seen.counted, seen.exits, time.monotonic() - started,
                               differences(seen.found, expected), diff_examples(seen.found, expected),
                               len(seen.kills_at), sum(sent < len(stream) for sent in seen.kills_at),
                               seen.recoveries, seen.peak_rss / (1 << 20), letters)
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

    highest: dict[tuple[int, str], int] = {}
    seen: dict[tuple[int, str], set[int]] = {}
    behind: dict[str, int] = {}
    index = []
    for record in read_whole_topic(deployment.settings, deployment.settings.internal_topics["events"]):
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

    history: dict[str, list] = {}
    for record in read_whole_topic(deployment.settings, f"{deployment.settings.app_id}-customers-changelog"):
        key = record.key.decode()
        state = orjson.loads(record.value) if record.value else None
        entry = [record.partition, record.offset, record.timestamp]
        if state is not None:
            entry += [{name: state.get(name) for name in ("clicks", "orders", "payments", "processed", "applied")}]
        history.setdefault(key, []).append(entry)
    (deployment.workdir / "changelog.json").write_bytes(orjson.dumps(history))
    return {"keys": len(history)}
