"""Lookup latency under load: the HTTP API next to a raw Redis read from the same client (``kairos bench --suite serving``).

1. Start a ``redis-server`` (the embedded stack's) and load a shop in the
   serving contract's shapes: ``customers`` customers in six segments, ``skus``
   SKUs with ten rules each, global and per-segment best-sellers.
2. Start the API in its own process (``python -m streams.serving``: one
   uvicorn process, no API key, access log off).
3. From this process, send requests **open-loop** at a fixed rate over
   ``connections`` keep-alive connections: request *i* is due at
   ``t0 + i / rate``, and its latency is measured from when it was due to when
   its answer has been read, so a slow answer delays the requests queued
   behind it and they count that delay (no coordinated omission). The mix is
   one third each: a customer lookup, an item's recommendations, a cart of
   two or three SKUs with its customer.
4. **Ceiling**: the same schedule, connections and client code sending
   ``HGETALL kairos:customer:{id}`` straight to Redis (the first read of a
   customer lookup).

The client speaks HTTP/1.1 and RESP over raw asyncio streams (a few µs per
request) so that the figures describe the server, not a client library.
The API's CPU use comes from ``/proc`` (share of one core). On a shared
machine the absolute numbers drift; the gap to the ceiling is the figure.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import redis

from streams.pipeline.keys import RedisKeys
from streams.serving.sample import write_bestsellers, write_customer, write_item_rules, write_segment
from streams.tools.devstack import free_port, start_redis, wait_for_port

#: One exchange on an open connection: send a request, read the whole answer; ``True`` if it succeeded.
Exchange = Callable[[asyncio.StreamReader, asyncio.StreamWriter, bytes], Awaitable[bool]]
SEGMENTS = 6


def load_shop(r: redis.Redis, keys: RedisKeys, customers: int, skus: int, seed: int) -> None:
    """Write the bench's shop through pipelines."""
    rng = random.Random(seed)
    catalogue = [f"SKU-{i:05d}" for i in range(skus)]
    with r.pipeline(transaction=False) as pipe:
        for segment_id in range(SEGMENTS):
            write_segment(pipe, keys, segment_id, f"segment {segment_id}", customers // SEGMENTS,
                          f"typical member of segment {segment_id}")
            write_bestsellers(pipe, keys, {sku: rng.randint(10, 500) for sku in rng.sample(catalogue, min(50, skus))},
                              segment_id)
        write_bestsellers(pipe, keys, {sku: rng.randint(10, 5000) for sku in rng.sample(catalogue, min(200, skus))})
        for sku in catalogue:
            consequents = {other: round(rng.uniform(0.05, 0.9), 3) for other in rng.sample(catalogue, min(10, skus))
                           if other != sku}
            write_item_rules(pipe, keys, sku, consequents, lift=round(rng.uniform(1.0, 6.0), 2))
        pipe.execute()
        for index in range(customers):
            write_customer(pipe, keys, f"c{index}", index % SEGMENTS, orders=rng.randint(1, 20),
                           spend=rng.uniform(5, 900))
            if index % 1000 == 999:
                pipe.execute()
        pipe.execute()


def http_requests(count: int, customers: int, skus: int, seed: int) -> list[tuple[str, bytes]]:
    """``count`` (endpoint, raw HTTP/1.1 request) pairs, the three lookups in turn with random ids."""
    rng = random.Random(seed)
    requests = []
    for i in range(count):
        customer = f"c{rng.randrange(customers)}"
        cart = ",".join(f"SKU-{rng.randrange(skus):05d}" for _ in range(rng.randint(2, 3)))
        endpoint, path = [
            ("customer", f"/api/v1/customers/{customer}"),
            ("item_recommendations", f"/api/v1/recommendations/items/SKU-{rng.randrange(skus):05d}?limit=10"),
            ("cart_recommendations", f"/api/v1/recommendations/cart?items={cart}&customer_id={customer}&limit=10"),
        ][i % 3]
        requests.append((endpoint, f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()))
    return requests


def redis_requests(count: int, customers: int, keys: RedisKeys, seed: int) -> list[tuple[str, bytes]]:
    """``count`` raw RESP ``HGETALL`` commands of random customers."""
    rng = random.Random(seed)
    commands = []
    for _ in range(count):
        key = keys.customer(f"c{rng.randrange(customers)}").encode()
        commands.append(("hgetall", b"*2\r\n$7\r\nHGETALL\r\n$%d\r\n%s\r\n" % (len(key), key)))
    return commands


async def http_exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> bool:
    """Send one HTTP/1.1 request; read the status line, headers and the ``Content-Length`` body."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return head.startswith(b"HTTP/1.1 200")


async def redis_exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, command: bytes) -> bool:
    """Send one RESP command; read its array (or map) of bulk strings."""
    writer.write(command)
    header = await reader.readline()
    if header[:1] not in (b"*", b"%"):
        return False
    for _ in range(int(header[1:]) * (2 if header[:1] == b"%" else 1)):
        length = int((await reader.readline())[1:])
        await reader.readexactly(length + 2)
    return True


async def drive(port: int, exchange: Exchange, requests: list[tuple[str, bytes]], rate: float,
                connections: int) -> dict[str, Any]:
    """Send ``requests`` open-loop at ``rate`` per second; latencies (s) from due time to answer, per endpoint."""
    streams = [await asyncio.open_connection("127.0.0.1", port) for _ in range(connections)]
    queue: asyncio.Queue[tuple[float, str, bytes] | None] = asyncio.Queue()
    latencies: dict[str, list[float]] = {}
    errors = 0

    async def connection_worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal errors
        while (item := await queue.get()) is not None:
            due, endpoint, payload = item
            ok = await exchange(reader, writer, payload)
            latencies.setdefault(endpoint, []).append(time.perf_counter() - due)
            errors += not ok

    workers = [asyncio.create_task(connection_worker(reader, writer)) for reader, writer in streams]
    started = time.perf_counter()
    for index, (endpoint, payload) in enumerate(requests):
        due = started + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((due, endpoint, payload))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - started
    for _, writer in streams:
        writer.close()
    return {"latencies": latencies, "errors": errors, "elapsed": elapsed}


def summary(latencies: list[float], elapsed: float | None = None) -> dict[str, float]:
    """Count, achieved rate and latency percentiles in milliseconds."""
    ms = np.asarray(latencies) * 1000.0
    figures = {"requests": int(ms.size)}
    if elapsed:
        figures["achieved_per_s"] = round(ms.size / elapsed, 1)
    for name, q in (("p50_ms", 50), ("p90_ms", 90), ("p99_ms", 99), ("p99_9_ms", 99.9)):
        figures[name] = round(float(np.percentile(ms, q)), 3)
    figures["max_ms"] = round(float(ms.max()), 3)
    return figures


def run_load(port: int, exchange: Exchange, requests: list[tuple[str, bytes]], rate: float,
             connections: int) -> dict[str, Any]:
    """One open-loop run on a fresh event loop (uvloop when installed)."""
    try:
        import uvloop

        return uvloop.run(drive(port, exchange, requests, rate, connections))
    except ImportError:
        return asyncio.run(drive(port, exchange, requests, rate, connections))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from ``/proc``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_api(redis_url: str, prefix: str, port: int, log_path: Path) -> subprocess.Popen:
    """``python -m streams.serving`` on ``port``; returns once ``/healthz`` answers."""
    env = dict(os.environ, KAIROS_REDIS_URL=redis_url, KAIROS_PREFIX=prefix, KAIROS_API_PORT=str(port),
               KAIROS_API_HOST="127.0.0.1", KAIROS_LOG_LEVEL="warning")
    env.pop("KAIROS_API_KEY", None)
    process = subprocess.Popen([sys.executable, "-m", "streams.serving"], env=env, stdout=log_path.open("wb"),
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    wait_for_port(port, process, 30, "the API")
    httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).raise_for_status()
    return process


def run_serving_bench(rate: float = 1000.0, duration: float = 20.0, warmup: float = 3.0, customers: int = 10_000,
                      skus: int = 2_000, connections: int = 32, seed: int = 11,
                      workdir: Path | None = None) -> dict[str, Any]:
    """Measure lookup latency at ``rate`` requests/s for ``duration`` s; returns the figures."""
    with tempfile.TemporaryDirectory(prefix="kairos-serving-bench-") as scratch:
        folder = workdir or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        redis_server = start_redis(folder)
        api = None
        try:
            redis_url = f"redis://127.0.0.1:{redis_server.port}/0"
            keys = RedisKeys("bench")
            with redis.Redis.from_url(redis_url) as r:
                load_shop(r, keys, customers, skus, seed)
            api_port = free_port()
            api = start_api(redis_url, keys.prefix, api_port, folder / "api.log")
            count = int(rate * duration)
            run_load(api_port, http_exchange, http_requests(int(rate * warmup), customers, skus, seed + 1), rate,
                     connections)
            cpu_before = cpu_seconds(api.pid)
            http = run_load(api_port, http_exchange, http_requests(count, customers, skus, seed), rate, connections)
            api_cpu = (cpu_seconds(api.pid) - cpu_before) / http["elapsed"]
            ceiling = run_load(redis_server.port, redis_exchange, redis_requests(count, customers, keys, seed), rate,
                               connections)
        finally:
            if api is not None:
                api.terminate()
                api.wait(10)
            redis_server.stop()
    every_http = [latency for values in http["latencies"].values() for latency in values]
    return {
        "rate_per_s": rate,
        "duration_s": duration,
        "connections": connections,
        "customers": customers,
        "skus": skus,
        "http": summary(every_http, http["elapsed"]) | {"errors": http["errors"]},
        "http_by_endpoint": {endpoint: summary(values) for endpoint, values in sorted(http["latencies"].items())},
        "api_cpu_share_of_one_core": round(api_cpu, 3),
        "redis_hgetall_ceiling": summary(ceiling["latencies"]["hgetall"], ceiling["elapsed"])
        | {"errors": ceiling["errors"]},
    }
