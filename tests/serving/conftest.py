"""The serving tests' world: the session's real redis-server, a shop written in the contract's
shapes under a prefix of its own per test, the API in-process (ASGI) or on a real uvicorn."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from uuid import uuid4

import httpx
import pytest
import redis
import uvicorn
from pydantic import SecretStr

from streams.pipeline.keys import RedisKeys
from streams.serving.api import create_app
from streams.settings import KairosSettings
from streams.tools.devstack import DevStack, free_port
from tests.serving.fixtures import write_shop

API_KEY = "s3cret-key"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Shop:
    """A shop's views in Redis: settings (with their own prefix), keys and a sync client to arrange more."""

    settings: KairosSettings
    keys: RedisKeys
    redis: redis.Redis


@pytest.fixture
def shop(stack: DevStack) -> Iterator[Shop]:
    """The fixture shop of :func:`write_shop`, under a fresh prefix."""
    settings = KairosSettings(redis_url=stack.redis_url, prefix=f"t{uuid4().hex[:8]}")
    client = redis.Redis.from_url(stack.redis_url)
    keys = RedisKeys(settings.prefix)
    write_shop(client, keys)
    yield Shop(settings, keys, client)
    for key in client.scan_iter(match=keys.pattern(), count=1000):
        client.delete(key)
    client.close()


@pytest.fixture
def asgi_client() -> Callable[[KairosSettings], AbstractAsyncContextManager[httpx.AsyncClient]]:
    """Open an in-process client to a fresh app for some settings (lifespan included)."""

    @asynccontextmanager
    async def open_client(settings: KairosSettings) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://kairos") as client:
                yield client

    return open_client


@dataclass
class LiveServer:
    """A real uvicorn serving the API on a loopback port, in a thread of the test process."""

    url: str
    server: uvicorn.Server
    thread: threading.Thread


def start_server(settings: KairosSettings) -> LiveServer:
    """Start uvicorn on a free port and wait until it accepts requests."""
    port = free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"uvicorn did not start on port {port}")
        time.sleep(0.02)
    return LiveServer(f"http://127.0.0.1:{port}", server, thread)


@pytest.fixture
def live_server(shop: Shop) -> Iterator[LiveServer]:
    """The API over the fixture shop, on a real uvicorn, protected by :data:`API_KEY`."""
    running = start_server(shop.settings.model_copy(update={"api_key": SecretStr(API_KEY)}))
    yield running
    running.server.should_exit = True
    running.thread.join(10)
