"""Basket rule views in a real Redis: rules a restarted worker no longer produces expire."""

from __future__ import annotations

import asyncio
import time
import uuid

import redis
from redis.asyncio import Redis as AsyncRedis

from models.baskets.rules import AssociationRule
from streams.pipeline.keys import RedisKeys
from streams.pipeline.stages.baskets import BasketState, publish_rules
from streams.pipeline.views import RedisViews, WriteBatch
from streams.settings import KairosSettings
from streams.tools.devstack import DevStack


def publish(settings: KairosSettings, state: BasketState, rules: list[AssociationRule], ttl: int) -> int:
    """One publication round; how many rule hashes it wrote."""
    async def run() -> int:
        client = AsyncRedis.from_url(settings.redis_dsn())
        batch = WriteBatch()
        written = publish_rules(batch, RedisViews(settings), state, rules, top_n=5, ttl=ttl)
        await batch.execute(client)
        await client.aclose()
        return written

    return asyncio.run(run())


BREAD = AssociationRule(("bread",), "butter", support=0.2, confidence=0.5, lift=2.0, count=20)
TEA = AssociationRule(("tea",), "milk", support=0.1, confidence=0.4, lift=1.5, count=10)


def isolated(stack: DevStack) -> tuple[KairosSettings, RedisKeys, redis.Redis]:
    """Settings under a prefix of its own on the test Redis, its keys, and a client reading text."""
    settings = KairosSettings(redis_url=stack.redis_url, prefix=f"t{uuid.uuid4().hex[:8]}")
    return settings, RedisViews(settings).keys, redis.Redis.from_url(settings.redis_dsn(), decode_responses=True)


def test_a_rule_a_restarted_worker_no_longer_produces_expires(stack: DevStack) -> None:
    settings, keys, client = isolated(stack)
    bread, tea = BREAD, TEA
    publish(settings, BasketState.new(settings, 0), [bread, tea], ttl=2)
    assert client.exists(keys.reco_rule(["tea"], "milk"), keys.reco_item("tea")) == 2

    # A restarted worker (its list of written rules is gone) produces only the bread rule now.
    restarted = BasketState.new(settings, 0)
    for _ in range(6):  # a round every 0.5 s: unchanged keys are renewed 0.67-1.33 s after their last write
        publish(settings, restarted, [bread], ttl=2)
        time.sleep(0.5)
    assert client.exists(keys.reco_rule(["tea"], "milk"), keys.reco_item("tea")) == 0
    assert client.hget(keys.reco_rule(["bread"], "butter"), "confidence") == "0.5"
    assert client.zscore(keys.reco_item("bread"), "butter") == 0.5


def test_a_round_writes_only_the_rules_that_changed_and_the_views_stay_whole(stack: DevStack) -> None:
    settings, keys, client = isolated(stack)
    bread, tea = BREAD, TEA
    state = BasketState.new(settings, 0)
    assert publish(settings, state, [bread, tea], ttl=300) == 2
    assert publish(settings, state, [bread, tea], ttl=300) == 0  # nothing moved: nothing written

    more_tea = AssociationRule(("tea",), "milk", support=0.11, confidence=0.45, lift=1.6, count=11)
    assert publish(settings, state, [bread, more_tea], ttl=300) == 1
    assert client.hget(keys.reco_rule(["tea"], "milk"), "confidence") == "0.45"
    assert client.zscore(keys.reco_item("tea"), "milk") == 0.45
    assert client.hget(keys.reco_rule(["bread"], "butter"), "confidence") == "0.5"
    assert 0 < client.ttl(keys.reco_rule(["bread"], "butter")) <= 300

    assert publish(settings, state, [bread], ttl=300) == 0  # tea's rule no longer produced: removed
    assert client.exists(keys.reco_rule(["tea"], "milk"), keys.reco_item("tea")) == 0
    assert client.zscore(keys.reco_item("bread"), "butter") == 0.5

    client.delete(keys.reco_rule(["bread"], "butter"), keys.reco_item("bread"))  # Redis came back empty
    state.published.rewrite_all()
    assert publish(settings, state, [bread], ttl=300) == 1
    assert client.zscore(keys.reco_item("bread"), "butter") == 0.5
    assert client.hget(keys.reco_rule(["bread"], "butter"), "confidence") == "0.5"
