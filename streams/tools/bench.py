"""``kairos bench``: measured throughput and latency, next to a ceiling from the same run.

Pipeline suite:

1. Start the embedded stack, generate N simulated events and load them into
   the input topics.
2. **Ceiling**: a raw aiokafka consumer reads the same topics and parses every
   value with ``json.loads`` (no validation, no state, no Redis).
3. **Pipeline**: a fresh ``kairos worker`` process consumes the same events;
   throughput is counted from its first to its last processed event (start-up
   and group join excluded), read from ``kairos:metrics:ingest``.
4. **Latency**: with the worker caught up, probe events are sent at a fixed
   rate among regular traffic, each for a customer of its own and stamped with
   the wall-clock send time; the worker stamps ``updated_at`` when the view is
   written, so latency = ``updated_at - ts`` per probe.

With ``--peer quix`` (:func:`bench_peers`) the latency runs give way to a
comparison on the same preloaded events: the ceiling, one worker and the Quix
Streams peer (:mod:`streams.tools.peers`), one after another.

Absolute numbers drift on shared machines; the ratio to the ceiling is the
figure to compare across runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import redis

from streams.pipeline.counters import OUTCOMES
from streams.pipeline.keys import RedisKeys
from streams.pipeline.topics import ensure_topics
from streams.settings import KairosSettings
from streams.tools.lookups import add_risk_rule
from streams.tools.devstack import DevStack, dev_stack
from streams.tools.peers.ceiling import raw_consumer
from streams.tools.peers.measure import Measurement, RunClock
from streams.tools.peers.workload import read_workload
from streams.tools.sender import send_fast, send_paced
from streams.tools.simulation import ShopSimulator, SimulatorConfig


@dataclass
class BenchResult:
    """Figures of one bench run, printed and appended to BENCHMARKS.md as JSON."""

    command: str
    machine: dict[str, Any]
    figures: dict[str, Any] = field(default_factory=dict)

    def add(self, name: str, value: Any) -> None:
        self.figures[name] = value
        print(f"  {name}: {value}", flush=True)


def machine() -> dict[str, Any]:
    """What this ran on (CPU model, cores, memory, load at start)."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": model, "cores": os.cpu_count(), "memory_gib": round(memory, 1),
            "python": platform.python_version(), "load_1m_at_start": round(os.getloadavg()[0], 2)}


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def simulated_events(count: int, seed: int, customers: int | None = None,
                     skus: int | None = None) -> list[tuple[str, str, Any]]:
    """``count`` valid simulated events (chaos off), sized for the count (or for ``customers`` and ``skus``)."""
    customers = customers or max(500, count // 60)
    config = SimulatorConfig(seed=seed, customers=customers, days=max(1.0, count / (customers * 12.0)),
                             **({"skus": skus} if skus else {}))
    events = []
    for event in ShopSimulator(config).events():
        events.append((event.topic, event.key, event.value))
        if len(events) >= count:
            break
    return events


def ingest_total(r: redis.Redis, keys: RedisKeys) -> int:
    counts = r.hgetall(keys.metrics("ingest"))
    return sum(int(v) for k, v in counts.items()
               if k.decode().rsplit(".", 1)[-1] in OUTCOMES)


def start_worker(stack: DevStack, settings: KairosSettings, log_name: str) -> subprocess.Popen:
    env = stack.env(KAIROS_APP_ID=settings.app_id, KAIROS_PREFIX=settings.prefix,
                    KAIROS_PARTITIONS=str(settings.partitions))
    log = (stack.workdir / log_name).open("ab")
    return subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"], env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait_for_total(r: redis.Redis, keys: RedisKeys, expected: int, worker: subprocess.Popen,
                   timeout: float, clock: RunClock | None = None) -> tuple[float, float]:
    """Wait until ``expected`` outcomes are counted; return (first seen, done) monotonic times (also marked on
    ``clock``, with the worker's CPU time)."""
    first = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        total = ingest_total(r, keys)
        now = time.monotonic()
        if total and first is None:
            first = now
            if clock is not None:
                clock.mark_first(now)
        if total >= expected:
            if clock is not None:
                clock.mark_first(now)
                clock.mark_last(now)
            return first or now, now
        if worker.poll() is not None:
            raise RuntimeError("worker exited during the benchmark")
        time.sleep(0.05)
    raise TimeoutError(f"pipeline did not finish {expected} events in {timeout:.0f} s")


def exits_check(worker: subprocess.Popen) -> Callable[[], None]:
    """A poll hook for :func:`wait_until_drained` that fails the wait when ``worker`` has exited."""
    def check() -> None:
        if worker.poll() is not None:
            raise RuntimeError("worker exited during the benchmark")
    return check


async def wait_until_drained(settings: KairosSettings, timeout: float,
                             on_poll: Callable[[], None] = lambda: None, topics: list[str] | None = None) -> float:
    """Wait until the app's consumer group has committed every internal topic (or ``topics``) to its end (every
    stage applied everything: a checkpointed stage commits at its next snapshot); the monotonic time it was seen.
    ``on_poll`` runs between two looks (to fail when a worker exited, or to start it again)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    from streams.pipeline.app import stage_topics
    from streams.pipeline.group_watch import GroupLag

    options = settings.kafka_client_options()
    consumer = AIOKafkaConsumer(**options, group_id=None, enable_auto_commit=False)
    admin = AIOKafkaAdminClient(**options)
    await consumer.start()
    await admin.start()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            await consumer.topics()
            partitions = [TopicPartition(topic, p) for topic in topics or stage_topics(settings)
                          for p in sorted(consumer.partitions_for_topic(topic) or ())]
            ends = await consumer.end_offsets(partitions)
            committed = {tp: meta.offset for tp, meta in
                         (await admin.list_consumer_group_offsets(settings.app_id, partitions=partitions)).items()}
            if GroupLag.of(ends, committed, await consumer.beginning_offsets(partitions)).lag == 0:
                return time.monotonic()
            on_poll()
            await asyncio.sleep(0.1)
        raise TimeoutError(f"the stages did not catch up within {timeout:.0f} s")
    finally:
        await consumer.stop()
        await admin.close()


async def latency_probes(settings: KairosSettings, rate: float, seconds: float, probe_every: int) -> list[str]:
    """Send traffic at ``rate`` for ``seconds``; every ``probe_every``-th event is a probe."""
    probes: list[str] = []
    stamped = []

    def traffic():
        sent = 0
        while True:
            sent += 1
            now = time.time()
            customer = f"probe-{sent}" if sent % probe_every == 0 else f"bg-{sent % 5000}"
            if customer.startswith("probe"):
                probes.append(customer)
            stamped.append(now)
            yield ("clicks", customer, {"event_id": f"lat-{sent}", "ts": iso(now), "customer_id": customer,
                                        "session_id": f"s-{customer}", "action": "view"})

    await send_paced(settings, traffic(), rate=rate, limit=int(rate * seconds))
    return probes


def poll_hashes(r: redis.Redis, keys: dict[str, str], fields: tuple[str, ...],
                timeout: float = 30.0) -> dict[str, list[bytes]]:
    """Poll the hashes ``keys`` (id -> Redis key) until each has every one of ``fields``, or ``timeout`` passes.

    Returns, per id whose hash got them, the fields' values.
    """
    deadline = time.monotonic() + timeout
    found: dict[str, list[bytes]] = {}
    while len(found) < len(keys) and time.monotonic() < deadline:
        pipe = r.pipeline(transaction=False)
        missing = [name for name in keys if name not in found]
        for name in missing:
            pipe.hmget(keys[name], *fields)
        for name, values in zip(missing, pipe.execute()):
            if all(value is not None for value in values):
                found[name] = values
        time.sleep(0.2)
    return found


def probe_latencies(r: redis.Redis, keys: RedisKeys, probes: list[str], timeout: float = 30.0) -> list[float]:
    """Per probe: view ``updated_at`` - event ``ts`` (milliseconds)."""
    found = poll_hashes(r, {probe: keys.customer(probe) for probe in probes}, ("updated_at", "last_seen"), timeout)
    return [(float(updated) - float(seen)) * 1000.0 for updated, seen in found.values()]


PROBE_RULE = "bench-latency-probe"


async def payment_probes(settings: KairosSettings, rate: float, seconds: float,
                         probe_every: int) -> dict[str, float]:
    """Send payments at ``rate`` for ``seconds``; every ``probe_every``-th trips the probe rule.

    Returns the probes' payment ids with their send times (wall clock).
    """
    probes: dict[str, float] = {}

    def traffic():
        sent = 0
        while True:
            sent += 1
            now = time.time()
            probe = sent % probe_every == 0
            payment_id = f"probe-pay-{sent}" if probe else f"bg-pay-{sent}"
            if probe:
                probes[payment_id] = now
            customer = f"probe-payer-{sent}" if probe else f"payer-{sent % 5000}"  # alerts are rate-limited per customer
            yield ("payments", customer, {
                "event_id": f"lat-pay-{sent}", "payment_id": payment_id, "order_id": f"ord-{sent}",
                "ts": iso(now), "customer_id": customer, "amount": 95_000.0 if probe else 40.0,
                "currency": "EUR", "method": "card", "card_fingerprint": f"card-{customer}",
            })

    await send_paced(settings, traffic(), rate=rate, limit=int(rate * seconds))
    return probes


def payment_latencies(r: redis.Redis, keys: RedisKeys, probes: dict[str, float],
                      timeout: float = 30.0) -> tuple[list[float], list[float]]:
    """Per probe: payment sent -> risk view written, and -> alert appended (milliseconds)."""
    found = poll_hashes(r, {payment_id: keys.risk_payment(payment_id) for payment_id in probes}, ("scored_at",),
                        timeout)
    views = [(float(scored_at) - probes[payment_id]) * 1000.0 for payment_id, (scored_at,) in found.items()]
    alerts = []
    for _, fields in r.xrange(keys.alerts(), count=100_000):
        subject = fields.get(b"subject", b"").decode()
        if subject in probes and fields.get(b"kind") == b"risk":
            alerts.append((float(fields[b"created_at"]) - probes[subject]) * 1000.0)
    return views, alerts


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_pipeline(result: BenchResult, events: int, seed: int, latency_rate: float, partitions: int) -> None:
    """Ceiling vs pipeline throughput, and event -> Redis latency."""
    with dev_stack(bench_workdir()) as stack:
        settings = KairosSettings(kafka_bootstrap=stack.kafka_bootstrap, redis_url=stack.redis_url,
                                  app_id="bench", prefix="bench", partitions=partitions)
        ensure_topics(settings)
        print(f"generating {events:,} simulated events ...", flush=True)
        generated = simulated_events(events, seed)
        started = time.perf_counter()
        sent = asyncio.run(send_fast(settings, generated))
        result.add("events", sent)
        result.add("load_rate_eps", round(sent / (time.perf_counter() - started)))
        del generated
        result.add("ceiling_raw_aiokafka_json_eps", round(asyncio.run(raw_consumer(settings, sent)).events_per_second))
        r = redis.Redis(port=stack.redis.port)
        keys = RedisKeys(settings.prefix)
        worker = start_worker(stack, settings, "bench-worker.log")
        try:
            first, done = wait_for_total(r, keys, sent, worker, timeout=600)
            rate = sent / max(done - first, 1e-9)
            result.add("pipeline_eps", round(rate))
            result.add("pipeline_to_ceiling_ratio", round(rate / result.figures["ceiling_raw_aiokafka_json_eps"], 3))
            # Every stage caught up (sales, baskets, anomaly, sessions run behind the customers stage).
            drained = asyncio.run(wait_until_drained(settings, timeout=600, on_poll=exits_check(worker)))
            result.add("pipeline_all_stages_eps", round(sent / max(drained - first, 1e-9)))
            probes = asyncio.run(latency_probes(settings, latency_rate, seconds=15, probe_every=20))
            latencies = probe_latencies(r, keys, probes)
            result.add("latency_rate_eps", latency_rate)
            result.add("latency_probes", len(latencies))
            if latencies:
                result.add("latency_p50_ms", round(statistics.median(latencies), 1))
                result.add("latency_p99_ms", round(percentile(latencies, 0.99), 1))
            # Payment -> risk view and alert: every 20th payment trips an analyst rule.
            add_risk_rule(settings, PROBE_RULE, "amount > 90000", "block", "bench latency probe")
            time.sleep(settings.risk_sync_seconds * 2)  # workers reload rules every sync round
            sent_probes = asyncio.run(payment_probes(settings, latency_rate, seconds=15, probe_every=20))
            views, alerts = payment_latencies(r, keys, sent_probes)
            result.add("payment_rate_per_s", latency_rate)
            result.add("payment_probes", len(sent_probes))
            result.add("payment_alerts_seen", len(alerts))
            for name, values in (("payment_to_risk_view", views), ("payment_to_alert", alerts)):
                if values:
                    result.add(f"{name}_p50_ms", round(statistics.median(values), 1))
                    result.add(f"{name}_p99_ms", round(percentile(values, 0.99), 1))
        finally:
            worker.terminate()
            worker.wait(30)
            r.close()


#: ``kairos bench --suite scaling``'s grid: (customers, SKUs, workers), each on the same number of events.
SCALING_GRID = ((1_000, 300, 1), (10_000, 300, 1), (100_000, 300, 1), (10_000, 3_000, 1),
                (10_000, 300, 2), (100_000, 300, 2))


def bench_scaling(result: BenchResult, events: int, seed: int, partitions: int,
                  grid: tuple[tuple[int, int, int], ...] = SCALING_GRID) -> list[dict[str, Any]]:
    """Throughput and memory over shop sizes and workers: per cell, ``events`` simulated events of a shop of
    that many customers and SKUs are preloaded, the raw-consumer ceiling is read, then that many workers
    (one process each) count them; events/s until the customers stage counted them all and until every stage
    committed its input, the ratio to the ceiling, and the workers' peak RSS (``VmHWM``, summed)."""
    from streams.tools.peers.measure import peak_rss_bytes

    rows = []
    for customers, skus, workers in grid:
        with dev_stack(bench_workdir()) as stack:
            settings = KairosSettings(kafka_bootstrap=stack.kafka_bootstrap, redis_url=stack.redis_url,
                                      app_id="bench", prefix="bench", partitions=partitions)
            ensure_topics(settings)
            sent = asyncio.run(send_fast(settings, simulated_events(events, seed, customers, skus)))
            ceiling = asyncio.run(raw_consumer(settings, sent)).events_per_second
            r = redis.Redis(port=stack.redis.port)
            processes = [start_worker(stack, settings, f"bench-worker-{n}.log") for n in range(workers)]
            try:
                first, done = wait_for_total(r, RedisKeys(settings.prefix), sent, processes[0], timeout=900)
                drained = asyncio.run(wait_until_drained(settings, timeout=900, on_poll=exits_check(processes[0])))
                rss = sum(peak_rss_bytes(process.pid) for process in processes)
            finally:
                for process in processes:
                    process.terminate()
                for process in processes:
                    process.wait(30)
                r.close()
        row = {"customers": customers, "skus": skus, "workers": workers, "events": sent,
               "pipeline_eps": round(sent / max(done - first, 1e-9)),
               "all_stages_eps": round(sent / max(drained - first, 1e-9)),
               "ceiling_eps": round(ceiling), "ratio_to_ceiling": round(sent / max(done - first, 1e-9) / ceiling, 3),
               "peak_rss_mb": round(rss / 2**20)}
        print("  " + ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in row.items()),
              flush=True)
        rows.append(row)
    result.add("scaling", rows)
    return rows


def bench_workdir() -> Path:
    """Where a bench run keeps its logs (replaced by the next run)."""
    path = Path(".kairos/bench").resolve()
    if path.exists():
        for old in path.glob("*.log"):
            old.unlink()
    return path


def append_to_benchmarks(result: BenchResult, path: Path) -> None:
    """Append the raw figures of this run to BENCHMARKS.md (the tables there are written from them)."""
    block = json.dumps({"command": result.command, "machine": result.machine, "figures": result.figures}, indent=1)
    with path.open("a") as handle:
        handle.write(f"\n<!-- kairos bench run {iso(time.time())} -->\n```json\n{block}\n```\n")


#: Engines ``kairos bench --peer`` can compare Kairos with (each a system of ``python -m streams.tools.peers``).
PEERS = ("quix",)
#: Topic configs of the preloaded input topics: nothing expires during a bench.
KEEP_FOREVER = {"retention.ms": "-1", "retention.bytes": "-1"}


def run_measured(stack: DevStack, settings: KairosSettings, system: str, expected: int, *extra: str) -> Measurement:
    """Run ``python -m streams.tools.peers <system>`` against ``stack`` and read its measurement."""
    env = stack.env(KAIROS_APP_ID=settings.app_id, KAIROS_PREFIX=settings.prefix,
                    KAIROS_PARTITIONS=str(settings.partitions))
    with (stack.workdir / f"bench-{settings.app_id}.log").open("ab") as log:
        done = subprocess.run([sys.executable, "-m", "streams.tools.peers", system, "--expected", str(expected),
                               *extra], env=env, stdout=subprocess.PIPE, stderr=log, timeout=1800, check=True)
    return Measurement.from_dict(json.loads(done.stdout.decode().strip().splitlines()[-1]))


def measure_worker(stack: DevStack, settings: KairosSettings, expected: int) -> Measurement:
    """One fresh ``kairos worker`` (every stage on) over the loaded events: first to last event counted."""
    ensure_topics(settings)
    r = redis.Redis(port=stack.redis.port)
    worker = start_worker(stack, settings, f"bench-{settings.app_id}.log")
    try:
        clock = RunClock(worker.pid)
        wait_for_total(r, RedisKeys(settings.prefix), expected, worker, timeout=1800, clock=clock)
        return clock.measurement("kairos", expected)
    finally:
        worker.terminate()
        worker.wait(30)
        r.close()


def peer_table(measurements: list[tuple[int, Measurement]]) -> list[str]:
    """Markdown rows: per run, events/s, its ratio to the ceiling of its round, CPU and peak RSS."""
    ceilings = {round_: m.events_per_second for round_, m in measurements if m.system == "ceiling"}
    rows = ["| round | system | events | events/s | × ceiling | CPU (cores) | peak RSS (MB) |",
            "|---|---|---|---|---|---|---|"]
    for round_, m in measurements:
        ratio = m.events_per_second / ceilings[round_] if round_ in ceilings else float("nan")
        rows.append(f"| {round_} | {m.system} | {m.events:,} | {m.events_per_second:,.0f} | {ratio:.3f} "
                    f"| {m.cores:.2f} | {m.peak_rss_mb:,.0f} |")
    return rows


def bench_peers(result: BenchResult, peer: str, events: int, seed: int, partitions: int,
                workload: Path | None, rounds: int) -> None:
    """The ceiling, Kairos and ``peer`` on the same preloaded events, one after another, ``rounds`` times."""
    if peer not in PEERS:
        raise ValueError(f"unknown peer {peer!r}: choose from {', '.join(PEERS)}")
    with dev_stack(bench_workdir()) as stack:
        base = KairosSettings(kafka_bootstrap=stack.kafka_bootstrap, redis_url=stack.redis_url,
                              app_id="bench", prefix="bench", partitions=partitions)
        # Stated, not left to the broker's defaults: Quix Streams derives its changelog topics' retention from
        # the inputs' and Tansu describes only the configs a topic was created with.
        ensure_topics(base, public_configs=KEEP_FOREVER)
        if workload is None:
            print(f"generating {events:,} simulated events ...", flush=True)
            loaded: list[tuple[str, str, Any]] = simulated_events(events, seed)
        else:
            print(f"reading {workload} ...", flush=True)
            loaded = read_workload(workload)
        mix: dict[str, int] = {}
        for event_type, _, _ in loaded:
            mix[event_type] = mix.get(event_type, 0) + 1
        result.add("workload", str(workload) if workload else f"simulated, {events:,} events, seed {seed}")
        result.add("mix", mix)
        result.add("customers", len({key for event_type, key, _ in loaded if event_type != "labels"}))
        sent = asyncio.run(send_fast(base, loaded))
        result.add("events", sent)
        del loaded
        r = redis.Redis(port=stack.redis.port)
        result.add("load_1m_before", round(os.getloadavg()[0], 2))
        measurements: list[tuple[int, Measurement]] = []
        for round_ in range(1, rounds + 1):
            for system in ("ceiling", "kairos", peer):
                r.flushdb()  # every system writes into the same, empty Redis
                settings = base.model_copy(update={"app_id": f"bench-{system}-{round_}",
                                                   "prefix": f"bench-{system}-{round_}"})
                if system == "ceiling":
                    measured = run_measured(stack, settings, "ceiling", sent)
                elif system == "kairos":
                    measured = measure_worker(stack, settings, sent)
                else:
                    measured = run_measured(stack, settings, peer, sent, "--group", settings.app_id,
                                            "--state-dir", str(stack.workdir / f"{settings.app_id}-state"))
                measurements.append((round_, measured))
                print(f"  round {round_} {system}: {measured.events_per_second:,.0f} events/s, "
                      f"{measured.cores:.2f} cores, peak RSS {measured.peak_rss_mb:,.0f} MB", flush=True)
        r.close()
        result.add("load_1m_after", round(os.getloadavg()[0], 2))
        result.add("runs", [{"round": round_, **m.to_dict(), "events_per_second": round(m.events_per_second),
                             "cores": m.cores} for round_, m in measurements])
        for round_ in range(1, rounds + 1):
            by_system = {m.system: m for n, m in measurements if n == round_}
            kairos, other = by_system["kairos"], by_system[peer]
            result.add(f"round_{round_}_kairos_to_{peer}_events_per_second",
                       round(kairos.events_per_second / other.events_per_second, 2))
            result.add(f"round_{round_}_kairos_to_{peer}_peak_rss", round(kairos.peak_rss_bytes / other.peak_rss_bytes, 2))
            result.add(f"round_{round_}_kairos_to_{peer}_cpu_per_event",
                       round((kairos.cpu_seconds / kairos.events) / (other.cpu_seconds / other.events), 2))
        print("\n".join(peer_table(measurements)), flush=True)
