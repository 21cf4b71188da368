"""Redis views: the serving contract, written absolutely, one pipeline per batch.

Every write is an absolute value (HSET/SET/ZADD of the current state, never
INCR of a delta), so re-writing a view after a redelivery converges to the
same result. Alerts are appended to a stream through a small script that
drops an alert id it has already appended (an alert repeated by a replay
after a crash appears once). Keys come from
:class:`~streams.pipeline.keys.RedisKeys` only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import hiredis
import redis
import redis.asyncio as aioredis
from redis.crc import key_slot

from streams.pipeline.keys import RedisKeys
from streams.settings import KairosSettings

#: Append an alert to the stream unless its id was appended before.
APPEND_ALERT_ONCE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 3))
end
return false
"""

#: Run many single-key writes as one command. Per write, KEYS holds its key and
#: ARGV its argument count n, then n entries: the command's name and the
#: arguments after the key.
RUN_WRITES = """
local i, k = 1, 1
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  redis.call(ARGV[i + 1], KEYS[k], unpack(ARGV, i + 2, i + n))
  i, k = i + n + 1, k + 1
end
return k - 1
"""


#: Writes per ``EVAL`` of :data:`RUN_WRITES`: Redis runs a script without serving other clients, and 200
#: writes take it about 1 ms (measured: ~5 µs per 7-field HSET), so lookups never wait much longer.
WRITES_PER_CALL = 200
#: Field-value pairs (or members) per HSET/ZADD/ZREM write: a bigger one is cut into several.
PAIRS_PER_WRITE = 1000


class WriteBatch:
    """The pipeline methods the view writers use, collected and sent as a few script calls in one round trip.

    A redis-py pipeline costs 10-20 µs of Python per command to queue, frame
    and parse; the customers stage writes five per payment, which was a
    quarter of a worker's main thread at 2,000 payments/s (profiled). Here the
    single-key writes (``hset``, ``expire``, ``set``, ``zadd``, ``zrem``,
    ``delete``) become the arguments of ``EVAL`` calls of :data:`RUN_WRITES`,
    :data:`WRITES_PER_CALL` writes each (one reply each), sent with the
    ``eval`` calls (alerts) in one pipeline. The writes are absolute, so a
    batch that failed part-way is simply sent again. An ``hset`` or ``zadd``
    of nothing is no write (redis-py would refuse it); one of more than
    :data:`PAIRS_PER_WRITE` pairs is cut into several writes.

    >>> batch = WriteBatch()
    >>> batch.hset("h", mapping={"a": "1", "b": 2})
    >>> batch.expire("h", 60)
    >>> batch.set("s", "x", ex=30)
    >>> batch.hset("empty", mapping={})
    >>> len(batch), batch.keys, batch.args
    (3, ['h', 'h', 's'], [5, 'HSET', 'a', '1', 'b', 2, 2, 'EXPIRE', 60, 4, 'SET', 'x', 'EX', 30])
    >>> [len(keys) for keys, _ in WriteBatch._calls(["k"] * 450, [1, "DEL"] * 450)]
    [200, 200, 50]
    >>> huge = WriteBatch()
    >>> huge.hset("h", mapping={f"f{i}": i for i in range(2500)})
    >>> huge.keys, huge.args[0], huge.args[2002], huge.args[4004], len(huge.args)  # counts: name + values
    (['h', 'h', 'h'], 2001, 2001, 1001, 5006)
    """

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.args: list[Any] = []
        self.scripts: list[tuple[Any, ...]] = []

    def __len__(self) -> int:
        return len(self.keys) + len(self.scripts)

    def _write(self, key: str, name: str, args: Iterable[Any] = (), per_write: int = 0) -> None:
        """One write of ``name`` on ``key``; with ``per_write``, one per that many of ``args`` (a script
        unpacks at most ~8,000 values per call, and HSET, ZADD and ZREM of a part each add up the same)."""
        values = list(args)
        step = per_write or max(len(values), 1)
        for first in range(0, max(len(values), 1), step):
            part = values[first:first + step]
            self.keys.append(key)
            self.args += (len(part) + 1, name, *part)

    def hset(self, key: str, mapping: Mapping[str, Any]) -> None:
        if mapping:
            self._write(key, "HSET", (x for item in mapping.items() for x in item), PAIRS_PER_WRITE * 2)

    def expire(self, key: str, seconds: int) -> None:
        self._write(key, "EXPIRE", (seconds,))

    def set(self, key: str, value: Any, ex: int | None = None) -> None:
        self._write(key, "SET", (value,) if ex is None else (value, "EX", ex))

    def zadd(self, key: str, mapping: Mapping[str, float]) -> None:
        if mapping:
            self._write(key, "ZADD", (x for member, score in mapping.items() for x in (score, member)),
                        PAIRS_PER_WRITE * 2)

    def zrem(self, key: str, *members: str) -> None:
        if members:
            self._write(key, "ZREM", members, PAIRS_PER_WRITE)

    def delete(self, key: str) -> None:
        self._write(key, "DEL")

    def eval(self, script: str, numkeys: int, *keys_and_args: Any) -> None:
        self.scripts.append((script, numkeys, *keys_and_args))

    @staticmethod
    def _calls(keys: list[str], args: list[Any]) -> Iterator[tuple[list[str], list[Any]]]:
        """Split the writes into groups of :data:`WRITES_PER_CALL`: each group's keys and arguments."""
        position = 0
        for first in range(0, len(keys), WRITES_PER_CALL):
            start = position
            for _ in keys[first:first + WRITES_PER_CALL]:
                position += args[position] + 1
            yield keys[first:first + WRITES_PER_CALL], args[start:position]

    async def execute(self, client: aioredis.Redis) -> None:
        """Send everything collected in one round trip (nothing when empty)."""
        if not self:
            return
        pipe = client.pipeline(transaction=False)
        groups = self._by_slot() if isinstance(client, aioredis.RedisCluster) else [(self.keys, self.args)]
        for group_keys, group_args in groups:
            for keys, args in self._calls(group_keys, group_args):
                pipe.eval(RUN_WRITES, len(keys), *keys, *args)
        for script in self.scripts:
            pipe.eval(*script)
        await pipe.execute()

    def _by_slot(self) -> list[tuple[list[str], list[Any]]]:
        """The writes grouped by Redis Cluster slot (a script's keys must share one), in order within each
        (a key's writes stay in order: they are in one slot).

        >>> batch = WriteBatch()
        >>> for key in ("a", "b", "a"):
        ...     batch.delete(key)
        >>> batch._by_slot()
        [(['a', 'a'], [1, 'DEL', 1, 'DEL']), (['b'], [1, 'DEL'])]
        """
        groups: dict[int, tuple[list[str], list[Any]]] = {}
        position = 0
        for key in self.keys:
            end = position + self.args[position] + 1
            keys, args = groups.setdefault(key_slot(key.encode()), ([], []))
            keys.append(key)
            args += self.args[position:end]
            position = end
        return list(groups.values())


class HiredisFraming:
    """Frame commands with hiredis (C) instead of redis-py's pure-Python packer.

    hiredis also encodes the arguments (str as UTF-8, int and float as redis-py
    writes them), so the bytes on the wire are the same; framing and encoding
    in Python were ~15 % of a worker's CPU on payment traffic (profiled). A
    mixin for redis-py's asyncio connections (which must use UTF-8, the default).

    >>> import redis.asyncio as aioredis
    >>> class Framed(HiredisFraming, aioredis.Connection): ...
    >>> args = ("HSET", "k", "f", 1.5, b"v", 7, "é", 0.1 + 0.2, 10**30, -1e-07, memoryview(b"m"), "CONFIG GET")
    >>> Framed().pack_command(*args) == [b"".join(aioredis.Connection().pack_command(*args))]
    True
    >>> Framed().pack_command("CLIENT SETNAME", "w") == [b"".join(aioredis.Connection().pack_command("CLIENT SETNAME", "w"))]
    True
    """

    def pack_command(self, *args: Any) -> list[bytes]:
        first = args[0]
        head = tuple((first.encode() if isinstance(first, str) else first).split())
        try:
            return [hiredis.pack_command(head + args[1:])]
        except TypeError:  # a memoryview (hiredis takes str, bytes, int and float); bools and None fail below too
            encode = self.encoder.encode
            return [hiredis.pack_command(head + tuple(bytes(encode(arg)) for arg in args[1:]))]


class FramedConnection(HiredisFraming, aioredis.Connection):
    """TCP connection framed by hiredis."""


class FramedSSLConnection(HiredisFraming, aioredis.SSLConnection):
    """TLS connection framed by hiredis."""


class FramedUnixConnection(HiredisFraming, aioredis.UnixDomainSocketConnection):
    """Unix-socket connection framed by hiredis."""


def redis_client(settings: KairosSettings, asynchronous: bool = True, **options: Any) -> Any:
    """A client for ``KAIROS_REDIS_URL`` with ``options`` (redis-py's): a cluster client (keys routed by
    slot) when ``KAIROS_REDIS_CLUSTER``, else a plain one. Every Kairos client is made here or in
    :func:`connect_redis`."""
    if settings.redis_cluster:
        kind = aioredis.RedisCluster if asynchronous else redis.RedisCluster
    else:
        kind = aioredis.Redis if asynchronous else redis.Redis
    return kind.from_url(settings.redis_dsn(), **options)


async def mget(client: Any, keys: list[str]) -> list[Any]:
    """``MGET`` on one Redis; on a cluster, keys in several slots are fetched per slot."""
    if isinstance(client, aioredis.RedisCluster):
        return await client.mget_nonatomic(keys)
    return await client.mget(keys)


def connect_redis(settings: KairosSettings) -> aioredis.Redis:
    """An asyncio Redis client for ``KAIROS_REDIS_URL`` (commands framed by hiredis when it encodes UTF-8).

    >>> connect_redis(KairosSettings(redis_url="redis://127.0.0.1:1/0")).connection_pool.connection_class.__name__
    'FramedConnection'
    >>> url = "redis://127.0.0.1:1/0?encoding=latin-1"
    >>> connect_redis(KairosSettings(redis_url=url)).connection_pool.connection_class.__name__
    'Connection'
    """
    if settings.redis_cluster:
        return redis_client(settings, decode_responses=False)
    pool = aioredis.ConnectionPool.from_url(settings.redis_dsn(), decode_responses=False)
    framed = {aioredis.Connection: FramedConnection, aioredis.SSLConnection: FramedSSLConnection,
              aioredis.UnixDomainSocketConnection: FramedUnixConnection}
    if pool.connection_kwargs.get("encoding", "utf-8").lower().replace("_", "-") in ("utf-8", "utf8"):
        # hiredis writes str as UTF-8; a URL asking for another encoding keeps redis-py's own framing
        pool.connection_class = framed.get(pool.connection_class, pool.connection_class)  # made lazily
    client = aioredis.Redis(connection_pool=pool)
    client.auto_close_connection_pool = True  # as Redis.from_url does
    return client


#: How long an erased customer stays in ``erasures:recent`` (longer than any session timeout).
ERASURES_RECENT_SECONDS = 7 * 86_400


def iso(ts: float) -> str:
    """Epoch seconds as ISO 8601 UTC with milliseconds (the wire's format)."""
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Alert:
    """One alert as the ``kairos:alerts`` stream and the ``alerts`` topic carry it.

    ``alert_id`` is stable for the thing alerted on (``risk:<payment id>``,
    ``surge:<series>:<window>`` ...), so a repeated alert is recognised.
    """

    kind: str
    alert_id: str
    subject: str
    score: float
    reasons: list[str]
    ts: float
    extra: dict[str, Any] = field(default_factory=dict)

    def fields(self) -> dict[str, str]:
        """Flat string fields for the Redis stream entry."""
        base = {
            "kind": self.kind, "alert_id": self.alert_id, "subject": self.subject,
            "score": f"{self.score:.6g}", "reasons": json.dumps(self.reasons), "ts": iso(self.ts),
            "created_at": f"{time.time():.3f}",
        }
        return base | {k: v if isinstance(v, str) else json.dumps(v) for k, v in self.extra.items()}

    def message(self) -> bytes:
        """The JSON value for the ``alerts`` topic."""
        return json.dumps({"kind": self.kind, "alert_id": self.alert_id, "subject": self.subject,
                           "score": self.score, "reasons": self.reasons, "ts": iso(self.ts),
                           **self.extra}).encode()


class RedisViews:
    """Writers for the views; each call adds commands to the caller's pipeline."""

    def __init__(self, settings: KairosSettings) -> None:
        self.keys = RedisKeys(settings.prefix)
        self.customer_ttl = settings.customer_ttl_seconds
        self.payment_ttl = settings.risk_payment_ttl_seconds
        self.alerts_max_len = settings.alerts_max_len
        self.alert_dedupe_seconds = settings.alert_dedupe_seconds
        self.worker_ttl = max(5, int(settings.metrics_flush_seconds * 5))

    def customers(self, pipe: Any, views: Iterable[tuple[str, Mapping[str, str]]]) -> None:
        """``kairos:customer:{id}`` hashes with their TTL."""
        for customer_id, fields in views:
            key = self.keys.customer(customer_id)
            pipe.hset(key, mapping=fields)
            pipe.expire(key, self.customer_ttl)

    def segments(self, pipe: Any, segments: Mapping[str, int]) -> None:
        """``kairos:segment:customer:{id}``: each customer's current segment id."""
        for customer_id, segment in segments.items():
            pipe.set(self.keys.segment_of(customer_id), str(segment), ex=self.customer_ttl)

    def forget_customers(self, pipe: Any, customer_ids: Iterable[str]) -> None:
        """Delete evicted customers' ``customer`` hash, ``segment:customer`` key and latest session's
        ``propensity:customer`` hash (see ``expiry``)."""
        for customer_id in customer_ids:
            pipe.delete(self.keys.customer(customer_id))
            pipe.delete(self.keys.segment_of(customer_id))
            pipe.delete(self.keys.propensity_of(customer_id))

    async def erase_customers(self, redis: Any, customer_ids: set[str]) -> int:
        """Delete what Redis holds of erased customers beyond their own keys: their payments' risk views and
        their sessions' views (each with its alert marker), and their entries in the alerts stream; note them
        in ``erasures:recent`` for the sessions stage (it drops their open sessions). Returns how many.

        Found by scanning: the risk payment and session views (they expire after their TTLs) and the capped
        alerts stream, so an erasure costs a pass over those (batches of requests share it).
        """
        doomed = (await self._views_of(redis, customer_ids, ("risk", "payment"), "payment_id", "risk")
                  + await self._views_of(redis, customer_ids, ("session",), "session_id", "abandon"))
        entries = [entry_id for entry_id, fields in await redis.xrange(self.keys.alerts())
                   if fields.get(b"customer_id", b"").decode() in customer_ids]
        pipe = redis.pipeline(transaction=False)
        for key in doomed:
            pipe.delete(key)  # one key per command: a cluster's keys are in several slots
        if entries:
            pipe.xdel(self.keys.alerts(), *entries)
        now = time.time()
        if customer_ids:
            pipe.zadd(self.keys.erasures_recent(), dict.fromkeys(customer_ids, now))
        pipe.zremrangebyscore(self.keys.erasures_recent(), "-inf", now - ERASURES_RECENT_SECONDS)
        await pipe.execute()
        return len(doomed) // 2 + len(entries)

    async def erase_sessions(self, redis: Any, customer_ids: set[str]) -> int:
        """Delete erased customers' session views and their alert markers (the sessions stage, once it dropped
        their open sessions: a view it wrote meanwhile goes too). Returns how many views."""
        doomed = await self._views_of(redis, customer_ids, ("session",), "session_id", "abandon")
        pipe = redis.pipeline(transaction=False)
        for key in doomed:
            pipe.delete(key)
        for customer_id in customer_ids:
            pipe.delete(self.keys.propensity_of(customer_id))
        await pipe.execute()
        return len(doomed) // 2

    async def _views_of(self, redis: Any, customer_ids: set[str], parts: tuple[str, ...], id_field: str,
                        alert_kind: str) -> list[str]:
        """The keys of the hashes under ``parts`` whose ``customer_id`` is one of ``customer_ids``, each with the
        alert marker of its subject (``<alert_kind>:<id_field>``)."""
        doomed: list[str] = []
        keys = [key async for key in redis.scan_iter(match=self.keys.pattern(*parts), count=1000)]
        for start in range(0, len(keys), 1000):
            part = keys[start:start + 1000]
            pipe = redis.pipeline(transaction=False)
            for key in part:
                pipe.hmget(key, "customer_id", id_field)
            for key, (customer, subject) in zip(part, await pipe.execute()):
                if customer is not None and customer.decode() in customer_ids:
                    doomed += [key.decode() if isinstance(key, bytes) else key,
                               self.keys.alert_seen(f"{alert_kind}:{subject.decode()}")]
        return doomed

    def forget_segments(self, pipe: Any, customer_ids: Iterable[str]) -> None:
        """Delete the ``segment:customer`` key of customers the segmenter no longer holds."""
        for customer_id in customer_ids:
            pipe.delete(self.keys.segment_of(customer_id))

    def segment_sizes(self, pipe: Any, sizes: Mapping[int, int]) -> None:
        """The ``kairos:segment:sizes`` hash: segment id -> customers in it (all workers)."""
        if sizes:
            pipe.delete(self.keys.segment_sizes())
            pipe.hset(self.keys.segment_sizes(), mapping={str(k): str(v) for k, v in sizes.items()})

    def segment_profiles(self, pipe: Any, profiles: Iterable[Mapping[str, Any]]) -> None:
        """``kairos:segment:profile:{id}`` hashes and the ``kairos:segment:sizes`` hash."""
        sizes = {}
        for profile in profiles:
            segment = profile["segment_id"]
            sizes[segment] = profile["size"]
            pipe.hset(self.keys.segment_profile(segment), mapping={
                k: v if isinstance(v, str) else json.dumps(v) for k, v in profile.items()
            })
        self.segment_sizes(pipe, sizes)

    @staticmethod
    def risk_payment_view(payment: Mapping[str, Any], assessment: Any) -> dict[str, str]:
        """The ``kairos:risk:payment:{id}`` hash of a scored payment: score, decision, reasons, model version."""
        return {
            "payment_id": payment["payment_id"], "customer_id": payment["customer_id"],
            "amount": f"{payment['amount']:.2f}", "ts": iso(payment["ts"]),
            "score": f"{assessment.score:.6f}", "decision": assessment.decision, "mode": assessment.mode,
            "threshold": f"{assessment.threshold:.6f}",
            "reasons": json.dumps([reason.text for reason in assessment.reasons]),
            "rule_hits": json.dumps([r.name for r in assessment.reasons if r.kind == "rule"]),
            "model_version": assessment.model_version, "scored_at": f"{time.time():.3f}",
        }

    def risk_payment(self, pipe: Any, view: Mapping[str, str], now: float | None = None) -> bool:
        """Write a payment's risk view; with ``now``, only for the rest of its TTL (False if it has expired)."""
        ttl = self.payment_ttl
        if now is not None:
            ttl = int(self.payment_ttl - (now - float(view["scored_at"])))
            if ttl <= 0:
                return False
        key = self.keys.risk_payment(view["payment_id"])
        pipe.hset(key, mapping=dict(view))
        pipe.expire(key, ttl)
        return True

    def alert(self, pipe: Any, alert: Alert) -> None:
        """Append ``alert`` to ``kairos:alerts`` unless its id was appended before."""
        args: list[str] = [str(self.alert_dedupe_seconds), str(self.alerts_max_len)]
        for name, value in alert.fields().items():
            args += [name, value]
        pipe.eval(APPEND_ALERT_ONCE, 2, self.keys.alert_seen(alert.alert_id), self.keys.alerts(), *args)

    def metrics(self, pipe: Any, component: str, fields: Mapping[str, Any]) -> None:
        """``kairos:metrics:{component}`` hash (absolute values)."""
        if fields:
            pipe.hset(self.keys.metrics(component), mapping={k: str(v) for k, v in fields.items()})

    def worker_metrics(self, pipe: Any, worker_id: str, fields: Mapping[str, Any]) -> None:
        """``kairos:metrics:worker:{id}``: one live worker's own figures (expire when it dies)."""
        key = self.keys.metrics(f"worker:{worker_id}")
        pipe.hset(key, mapping={k: str(v) for k, v in fields.items()} | {"updated_at": f"{time.time():.3f}"})
        pipe.expire(key, self.worker_ttl)
