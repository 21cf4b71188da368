"""``kairos demo``: the whole system on one machine, live.

Starts the embedded broker (Tansu) and a redis-server on free loopback ports,
creates the topics, starts a worker process, streams the simulated shop into
Kafka at a paced rate and shows what lands in Redis. Ctrl-C stops everything
it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis
from pydantic import SecretStr
from rich.console import Console
from rich.live import Live
from rich.table import Table

from streams.pipeline.keys import RedisKeys
from streams.pipeline.topics import ensure_topics
from streams.settings import KairosSettings
from streams.tools.devstack import DevStack, ManagedProcess, dev_stack, free_port, wait_for_port
from streams.tools.sender import SendStats, send_paced
from streams.tools.simulation import ShopSimulator, SimulatorConfig

console = Console()


def start_child(stack: DevStack, name: str, args: list[str], env: dict[str, str], port: int = 0) -> ManagedProcess:
    """Start ``python -m streams.cli <args>`` pointed at the stack, logging to the stack's folder."""
    log_path = stack.workdir / f"{name}.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", *args], env=stack.env(**env),
        stdout=log_path.open("ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    child = ManagedProcess(name, process, port, log_path)
    stack.children.append(child)
    return child


def status_table(r: redis.Redis, keys: RedisKeys, stats: SendStats, started: float) -> Table:
    """One screen of what is flowing: sent, processed, rejected, views in Redis."""
    ingest = {k.decode(): int(v) for k, v in r.hgetall(keys.metrics("ingest")).items()}
    table = Table(title=f"Kairos demo — {time.monotonic() - started:,.0f} s", show_lines=False)
    table.add_column("event type")
    for column in ("sent", "processed", "invalid", "duplicate"):
        table.add_column(column, justify="right")
    for event_type in ("clicks", "orders", "payments", "labels"):
        table.add_row(
            event_type, f"{stats.sent.get(event_type, 0):,}",
            *(f"{ingest.get(f'{event_type}.{outcome}', 0):,}" for outcome in ("processed", "invalid", "duplicate")),
        )
    customers = sum(1 for _ in r.scan_iter(keys.pattern("customer"), count=5000))
    table.caption = f"{customers:,} customer views in Redis · send rate {stats.rate():,.0f}/s\n"
    return table


def cli_exports(settings: KairosSettings) -> str:
    """The ``export`` line that points the CLI (in another shell) at ``settings``' broker, Redis and prefix."""
    variables = {"KAIROS_KAFKA_BOOTSTRAP": settings.kafka_bootstrap, "KAIROS_REDIS_URL": settings.redis_dsn(),
                 "KAIROS_PREFIX": settings.prefix}
    return "export " + " ".join(f"{name}={shlex.quote(value)}" for name, value in variables.items())


def run_demo(settings: KairosSettings, rate: float, customers: int, days: float, seed: int, workdir: Path | None,
             duration: float | None) -> None:
    """Run the demo on ``settings`` pointed at its own stack until Ctrl-C (or ``duration`` seconds)."""
    with dev_stack(workdir) as stack:
        settings = settings.model_copy(update={"kafka_bootstrap": stack.kafka_bootstrap,
                                               "redis_url": SecretStr(stack.redis_url)})
        ensure_topics(settings)
        start_child(stack, "worker", ["worker"], {})
        api_port = free_port()
        api = start_child(stack, "api", ["serve"], {"KAIROS_API_PORT": str(api_port)}, api_port)
        wait_for_port(api_port, api.process, 30, "the lookup API")
        keys = RedisKeys(settings.prefix)
        console.print(f"[bold]Kairos demo[/] — broker {stack.kafka_bootstrap}, Redis {stack.redis_url}")
        console.print(f"  dashboard:          http://127.0.0.1:{api_port}/   (API docs: /docs)")
        console.print(f"  look at the views:  redis-cli -p {stack.redis.port} --scan --pattern '{keys.pattern()}'")
        console.print(f"  one customer:       redis-cli -p {stack.redis.port} hgetall {keys.customer('<customer_id>')}")
        console.print(f"  dead letters:       kafka topic '{settings.topics.dead_letters}' on {stack.kafka_bootstrap}")
        console.print(f"  logs:               {stack.workdir}")
        console.print("  the CLI (kairos segments, alerts ...) in another shell, after:")
        console.print(f"    {cli_exports(settings)}", markup=False, highlight=False, soft_wrap=True)
        console.print("  Ctrl-C stops everything.\n")
        config = SimulatorConfig.live_demo(seed=seed).model_copy(update={"customers": customers, "days": days})
        simulator = ShopSimulator(config)
        events = ((e.topic, e.key, e.value) for e in simulator.events())
        r = redis.Redis(port=stack.redis.port)
        stats = SendStats()
        started = time.monotonic()
        stop = asyncio.Event()

        async def main() -> None:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            sender = asyncio.create_task(send_paced(settings, events, rate=rate, stats=stats, stop=stop))
            with Live(status_table(r, keys, stats, started), console=console, refresh_per_second=2) as live:
                while not stop.is_set():
                    if duration is not None and time.monotonic() - started > duration:
                        break
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(stop.wait(), 1.0)
                    live.update(status_table(r, keys, stats, started))
            stop.set()
            await sender

        try:
            asyncio.run(main())
        finally:
            console.print("stopping worker, broker and Redis ...")
            r.close()
    console.print("stopped.")


def demo_workdir() -> Path:
    """Where the demo keeps its logs: ./.kairos/demo (next to where it runs)."""
    return Path(os.environ.get("KAIROS_DEMO_DIR", ".kairos/demo")).resolve()
