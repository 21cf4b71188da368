"""Redis views: the serving contract, written absolutely, one pipeline per batch.

Every write is an absolute value (HSET/SET/ZADD of the current state, never
INCR of a delta), so re-writing a view after a redelivery converges to the
same result. Keys come from :class:`~streams.pipeline.keys.RedisKeys` only.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

import redis.asyncio as aioredis

from streams.pipeline.keys import RedisKeys
from streams.settings import KairosSettings


def connect_redis(settings: KairosSettings) -> aioredis.Redis:
    """An asyncio Redis client for ``KAIROS_REDIS_URL``."""
    return aioredis.Redis.from_url(settings.redis_dsn(), decode_responses=False)


class RedisViews:
    """Writers for the views; each call adds commands to the caller's pipeline."""

    def __init__(self, settings: KairosSettings) -> None:
        self.keys = RedisKeys(settings.prefix)
        self.customer_ttl = settings.customer_ttl_seconds
        self.worker_ttl = max(5, int(settings.metrics_flush_seconds * 5))

    def customers(self, pipe: Any, views: Iterable[tuple[str, Mapping[str, str]]]) -> None:
        """``kairos:customer:{id}`` hashes with their TTL."""
        for customer_id, fields in views:
            key = self.keys.customer(customer_id)
            pipe.hset(key, mapping=fields)
            pipe.expire(key, self.customer_ttl)

    def metrics(self, pipe: Any, component: str, fields: Mapping[str, Any]) -> None:
        """``kairos:metrics:{component}`` hash (absolute values)."""
        if fields:
            pipe.hset(self.keys.metrics(component), mapping={k: str(v) for k, v in fields.items()})

    def worker_metrics(self, pipe: Any, worker_id: str, fields: Mapping[str, Any]) -> None:
        """``kairos:metrics:worker:{id}``: one live worker's own figures (expire when it dies)."""
        key = self.keys.metrics(f"worker:{worker_id}")
        pipe.hset(key, mapping={k: str(v) for k, v in fields.items()} | {"updated_at": f"{time.time():.3f}"})
        pipe.expire(key, self.worker_ttl)
