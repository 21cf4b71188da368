"""The customers stage's one-call view writes (WriteBatch) against a real redis-server."""

from __future__ import annotations

import asyncio

import pytest
import redis
from redis.exceptions import ResponseError

from streams.pipeline.views import Alert, RedisViews, WriteBatch, connect_redis
from streams.settings import KairosSettings


def _write(settings: KairosSettings, fill, use_batch: bool) -> None:
    """Run the view writers ``fill`` into a WriteBatch or a plain redis-py pipeline, and send it."""

    async def go() -> None:
        client = connect_redis(settings)
        try:
            if use_batch:
                batch = WriteBatch()
                fill(batch)
                await batch.execute(client)
            else:
                pipe = client.pipeline(transaction=False)
                fill(pipe)
                await pipe.execute()
        finally:
            await client.aclose()

    asyncio.run(go())


class _Assessment:
    score, decision, mode, threshold, model_version, reasons = 0.97, "review", "model", 0.5, "m-3", []


def _views(prefix: str):
    def fill(pipe) -> None:
        views = RedisViews(KairosSettings(prefix=prefix))
        views.customers(pipe, [("c1", {"orders": "3", "name": "Zoë", "spend": "12.5"}), ("c2", {"orders": "1"})])
        views.segments(pipe, {"c1": 2, "c2": 0})
        views.segment_profiles(pipe, [{"segment_id": 2, "size": 7, "label": "loyal", "centroid": {"orders": 3.5}}])
        item = views.keys.reco_item("A")
        pipe.zadd(item, {"B": 0.5, "C": 0.25, "D": 1.0})
        pipe.zrem(item, "C", "D")
        payment = {"payment_id": "p1", "customer_id": "c1", "amount": 95.0, "ts": 1_793_491_200.0}
        views.risk_payment(pipe, views.risk_payment_view(payment, _Assessment()))
        views.alert(pipe, Alert("risk", "risk:p1", "p1", 0.97, ["amount 9x usual"], 1_793_491_200.0,
                                {"customer_id": "c1"}))
    return fill


def _dump(r: redis.Redis, prefix: str) -> dict:
    """Every key under ``prefix`` with its type, value (timestamps left out) and TTL (rounded to minutes)."""
    out = {}
    for key in sorted(r.scan_iter(f"{prefix}:*")):
        kind = r.type(key).decode()
        if kind == "hash":
            value = {k: v for k, v in r.hgetall(key).items() if k != b"scored_at"}
        elif kind == "string":
            value = r.get(key)
        elif kind == "zset":
            value = r.zrange(key, 0, -1, withscores=True)
        else:
            value = [{k: v for k, v in fields.items() if k != b"created_at"} for _, fields in r.xrange(key)]
        out[key.decode().split(":", 1)[1]] = (kind, value, round(r.ttl(key) / 60))
    return out


def test_a_write_batch_leaves_redis_as_the_pipeline_does_and_repeating_it_changes_nothing(stack) -> None:
    r = redis.Redis(port=stack.redis.port)
    settings = KairosSettings(redis_url=stack.redis_url)
    _write(settings, _views("viewpipe"), use_batch=False)
    _write(settings, _views("viewbatch"), use_batch=True)
    by_pipeline, by_batch = _dump(r, "viewpipe"), _dump(r, "viewbatch")
    assert by_batch == by_pipeline
    assert by_batch["customer:c1"][1][b"name"] == "Zoë".encode()
    assert by_batch["customer:c1"][2] == 90 * 24 * 60  # the view's TTL was set with it
    assert len(by_batch["alerts"][1]) == 1
    assert by_batch["segment:sizes"][1] == {b"2": b"7"}  # deleted, then written whole
    assert by_batch["reco:item:A"][1] == [(b"B", 0.5)]

    _write(settings, _views("viewbatch"), use_batch=True)  # a retry after a failure part-way
    assert _dump(r, "viewbatch") == by_batch  # absolute writes, and the alert is not appended twice
    r.close()


def test_a_write_batch_that_fails_raises_so_the_stage_retries_it(stack) -> None:
    r = redis.Redis(port=stack.redis.port)
    r.rpush("viewfail:customer:c1", "not a hash")  # HSET on it fails with WRONGTYPE
    settings = KairosSettings(redis_url=stack.redis_url)
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        _write(settings, _views("viewfail"), use_batch=True)
    r.delete("viewfail:customer:c1")
    _write(settings, _views("viewfail"), use_batch=True)
    assert r.hget("viewfail:customer:c1", "orders") == b"3"
    r.close()


def test_an_empty_write_batch_sends_nothing(stack) -> None:
    async def go() -> None:
        client = connect_redis(KairosSettings(redis_url=stack.redis_url))
        await WriteBatch().execute(client)  # no round trip, no error
        await client.aclose()

    asyncio.run(go())


def test_a_big_write_batch_goes_as_several_short_scripts_and_writes_everything(stack) -> None:
    """Redis serves no one else while a script runs: a big batch is cut into calls of a couple hundred writes."""
    r = redis.Redis(port=stack.redis.port)
    settings = KairosSettings(redis_url=stack.redis_url, prefix="viewbig")

    def fill(batch) -> None:
        views = RedisViews(settings)
        views.customers(batch, [(f"c{i}", {"orders": str(i), "spend": f"{i * 1.5:.2f}"}) for i in range(450)])

    before = r.config_get("slowlog-*")
    r.config_set("slowlog-max-len", 4096)  # Redis 7 also logs the commands a script runs
    r.config_set("slowlog-log-slower-than", 0)
    r.execute_command("SLOWLOG", "RESET")
    try:
        _write(settings, fill, use_batch=True)
        calls = [entry for entry in r.slowlog_get(4096) if entry["command"].startswith(b"EVAL")]
    finally:
        for name, value in before.items():
            r.config_set(name, value)
    assert len(calls) == 5  # 900 writes (HSET and EXPIRE per customer), 200 per call
    assert all(r.hget(f"viewbig:customer:c{i}", "orders") == str(i).encode() for i in range(450))
    assert min(r.ttl(f"viewbig:customer:c{i}") for i in range(450)) > 0
    r.close()


def test_a_hash_of_thousands_of_fields_is_written_in_parts(stack) -> None:
    """A script unpacks at most ~8,000 values per call: one HSET of 5,000 fields would fail every retry."""
    r = redis.Redis(port=stack.redis.port)
    fields = {f"f{i}": str(i) for i in range(5000)}
    _write(KairosSettings(redis_url=stack.redis_url), lambda batch: batch.hset("viewhuge:h", mapping=fields),
           use_batch=True)
    assert r.hlen("viewhuge:h") == 5000 and r.hget("viewhuge:h", "f4999") == b"4999"
    r.close()
