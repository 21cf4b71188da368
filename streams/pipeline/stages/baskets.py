"""Bought-together: itemset counts partitioned by SKU, rules and best-sellers in Redis.

The customers stage sends every accepted order (its SKUs, the customer's
segment) to every partition of ``<app_id>-baskets``. Each partition's
:class:`~models.baskets.BasketCounter` counts the basket count and every
single SKU, but an itemset of two or more SKUs only when its smallest SKU hashes to that
partition: each itemset of two or more SKUs is counted in exactly one place
across the workers, while singles (needed for support and lift everywhere)
are counted by all. Rules whose antecedent pair lives elsewhere take that
pair's support from the other partitions' published supports (model sync).

Partition 0 also keeps the best-sellers, overall and per segment (the
recommendation fallbacks), and every partition watches its own pairs for
``trend`` alerts once per ``KAIROS_BASKET_TREND_WINDOW_SECONDS`` of event time.
States are checkpointed with :mod:`streams.pipeline.snapshots`.
"""

from __future__ import annotations

import json
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

from models.baskets import AssociationRule, BasketCounter, RisingPairs, SegmentBestSellers
from streams.pipeline.model_sync import ModelSync
from streams.pipeline.packing import PackedBatch
from streams.pipeline.replay_guard import AppliedOffsets
from streams.pipeline.views import Alert, RedisViews
from streams.settings import KairosSettings

SYNC_KEY_PREFIX = "baskets:"


def basket_record(order: dict[str, Any], segment: int | None) -> dict[str, Any]:
    """What the basket stage needs of an order: its time, lines and the customer's segment."""
    lines = [{"sku": line["sku"], "quantity": line["quantity"]} for line in order["lines"]]
    return {"ts": order["ts"], "lines": lines, "segment": segment}


class BasketState:
    """One basket partition: its counter, trend detector, (partition 0) best-sellers and replay guard."""

    STATE = ("BasketState", 2)

    def __init__(self, partition: int, counter: BasketCounter, rising: RisingPairs,
                 bestsellers: SegmentBestSellers | None, applied: AppliedOffsets | None = None,
                 next_trend_at: float | None = None) -> None:
        self.partition = partition
        self.counter = counter
        self.rising = rising
        self.bestsellers = bestsellers
        self.applied = applied or AppliedOffsets()
        self.next_trend_at = next_trend_at
        self.published = PublishedRules()
        #: Wall clock (epoch seconds) of the last basket counted: a reported figure (how fast the live path
        #: counts), never an input to what is counted.
        self.counted_at = 0.0

    @classmethod
    def new(cls, settings: KairosSettings, partition: int) -> BasketState:
        counter = BasketCounter(
            epsilon=settings.basket_epsilon, half_life=settings.basket_half_life_seconds,
            min_support=settings.basket_min_support, min_confidence=settings.basket_min_confidence,
            min_lift=settings.basket_min_lift, top_n=settings.basket_top_n, max_size=settings.basket_max_size,
            segment=settings.basket_segment, max_entries=settings.basket_max_entries,
            partition=partition, partitions=settings.partitions,
        )
        best = SegmentBestSellers(top_n=settings.basket_top_n * 2) if partition == 0 else None
        return cls(partition, counter, RisingPairs(cooldown=settings.basket_trend_window_seconds * 24), best)

    def apply(self, batch: PackedBatch) -> int:
        """Count the batch's new baskets; returns how many."""
        counted = 0
        for offset, record in batch.entries:
            if record is None or not self.applied.fresh(batch.path, offset):
                continue
            self.counter.learn_one(record)
            if self.bestsellers is not None:
                self.bestsellers.learn_one(record)
            counted += 1
        if counted:
            self.counted_at = time.time()
        return counted

    def trends(self, window: float, counter: BasketCounter | None = None) -> list[Alert]:
        """Once per event-time window: pairs whose support or lift jumped (in ``counter``, a
        :meth:`~BasketCounter.snapshot` of this partition's, when given)."""
        counter = self.counter if counter is None else counter
        latest = counter.latest_ts
        if latest is None:
            return []
        if self.next_trend_at is None:
            self.next_trend_at = latest + window
            return []
        if latest < self.next_trend_at:
            return []
        observation = RisingPairs.observation(counter.itemsets(), latest, counter.min_support)
        raised = self.rising.predict_one(observation)
        self.rising.learn_one(observation)
        self.next_trend_at = latest + window
        return [
            Alert(kind="trend", alert_id=f"trend:{','.join(a.items)}:{int(a.ts // window)}", subject=",".join(a.items),
                  score=a.score, reasons=a.reasons(), ts=a.ts,
                  extra={"items": list(a.items), "support": a.support, "lift": a.lift})
            for a in raised
        ]

    def owned_pairs(self, counter: BasketCounter | None = None) -> dict[str, float]:
        """Supports of the pairs this partition owns (for the other partitions' rules), in ``counter`` (a
        :meth:`~BasketCounter.snapshot` of this partition's) when given."""
        counter = self.counter if counter is None else counter
        return {",".join(itemset): support for itemset, support in counter.itemsets().items() if len(itemset) == 2}

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.STATE[0], "version": self.STATE[1], "partition": self.partition,
                "counter": self.counter.state_dict(), "rising": self.rising.state_dict(),
                "bestsellers": None if self.bestsellers is None else self.bestsellers.state_dict(),
                "applied": self.applied.to_state(), "next_trend_at": self.next_trend_at}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> BasketState:
        best = state["bestsellers"]
        return cls(state["partition"], BasketCounter.from_state(state["counter"]),
                   RisingPairs.from_state(state["rising"]),
                   None if best is None else SegmentBestSellers.from_state(best),
                   AppliedOffsets(state["applied"]), state["next_trend_at"])


@dataclass
class PublishedRules:
    """What a partition last wrote to Redis: to remove what it no longer produces, and to write again only
    what changed (or whose TTL is due for renewal).

    ``rules`` maps each rule written, ``(antecedent, consequent)``, and ``members`` each SKU whose consequents
    were written, to ``(what was written, when)`` (wall clock).
    """

    members: dict[str, tuple[dict[str, float], float]] = field(default_factory=dict)
    rules: dict[tuple[tuple[str, ...], str], tuple[tuple[float, ...], float]] = field(default_factory=dict)
    at: float = 0.0

    def rewrite_all(self) -> None:
        """Have the next round write every rule and consequent list again (a Redis that came back empty), still
        removing what it no longer produces."""
        self.rules = {ident: (figures, float("-inf")) for ident, (figures, _) in self.rules.items()}
        self.members = {sku: (best, float("-inf")) for sku, (best, _) in self.members.items()}


#: A served rule is written again once its confidence moved by this much (absolute) since it was written...
CONFIDENCE_STEP = 0.001
#: ... or its support, lift or count by this share of the written value.
RELATIVE_STEP = 0.01


def moved(written: tuple[float, ...], now: tuple[float, ...]) -> bool:
    """Whether a rule's ``(support, confidence, lift, count)`` moved enough since they were written to be
    written again: every basket changes every support a little (its denominator), so an exact comparison would
    rewrite every rule every round; the served figures stay within these steps of the counter's.

    >>> moved((0.2, 0.5, 2.0, 20.0), (0.2005, 0.5004, 2.01, 20.1)), moved((0.2, 0.5, 2.0, 20.0), (0.2, 0.5011, 2.0, 20.0))
    (False, True)
    """
    support, confidence, lift, count = written
    return (abs(now[1] - confidence) >= CONFIDENCE_STEP or abs(now[0] - support) > RELATIVE_STEP * support
            or abs(now[2] - lift) > RELATIVE_STEP * lift or abs(now[3] - count) > RELATIVE_STEP * count)


def renewal_due(name: str, written_at: float, now: float, ttl: int) -> bool:
    """Whether a key written unchanged at ``written_at`` needs its TTL renewed at ``now``: after a third of the
    TTL plus a share of another third fixed by ``name`` (a SKU), so the renewals of keys first written together
    spread over rounds instead of all falling on one.

    >>> renewal_due("k", 0.0, 99.0, 300), renewal_due("k", 0.0, 201.0, 300)
    (False, True)
    """
    third = ttl / 3.0
    return now - written_at >= third * (1.0 + (zlib.crc32(name.encode()) % 1000) / 1000.0)


#: Basket figures every partition has in full (each sees every basket): the total is the largest, not the sum.
SHARED_FIGURES = ("baskets", "pair_error_bound", "itemset_error_bound", "counted_at")
#: Basket figures whose total is the smallest partition's: the baskets the served rules count at least.
LEAST_FIGURES = ("rules_baskets",)


def basket_totals(per_partition: dict[int, dict[str, float]]) -> dict[str, float]:
    """``kairos:metrics:baskets`` from each partition's figures: every order reaches every basket partition,
    so baskets counted and the error bounds are the largest partition's (a partition behind counts fewer), and
    the baskets the served rules count (``rules_baskets``, each round's snapshot) the smallest partition's;
    tracked entries and rules are each partition's share of the SKUs, so they add up.

    >>> part = {"baskets": 100.0, "entries_2": 40.0, "pair_error_bound": 0.002, "rules": 3.0, "rules_baskets": 90.0}
    >>> totals = basket_totals({0: part, 1: part | {"baskets": 98.0, "entries_2": 10.0, "rules_baskets": 80.0},
    ...                         2: part, 3: part})
    >>> totals["baskets"], totals["entries_2"], totals["pair_error_bound"], totals["rules"], totals["partitions"]
    (100.0, 130.0, 0.002, 12.0, 4.0)
    >>> totals["rules_baskets"]
    80.0
    """
    totals: dict[str, float] = {"partitions": float(len(per_partition))}
    for figures in per_partition.values():
        for name, value in figures.items():
            if name in SHARED_FIGURES:
                totals[name] = max(totals.get(name, value), value)
            elif name in LEAST_FIGURES:
                totals[name] = min(totals.get(name, value), value)
            else:
                totals[name] = totals.get(name, 0.0) + value
    return totals


def foreign_supports(model_sync: ModelSync, partition: int) -> dict[tuple, float]:
    """Pair supports the other partitions published last round (a round stale at most)."""
    supports: dict[tuple, float] = {}
    for state in model_sync.states(SYNC_KEY_PREFIX):
        if state.payload["partition"] != partition:
            supports.update({tuple(pair.split(",")): s for pair, s in state.payload["pairs"].items()})
    return supports


def publish_rules(pipe: Any, views: RedisViews, state: BasketState, rules: list[AssociationRule],
                  top_n: int, ttl: int, now: float | None = None) -> int:
    """Write this partition's rules (item consequents, rule hashes) that moved since its last publication
    (:func:`moved`) or whose TTL is due for renewal (:func:`renewal_due`); drop what it no longer produces.
    Returns how many rule hashes were written.

    Every key written carries ``ttl`` (seconds): what this worker dropped from Redis is forgotten on a restart
    or a rebalance, and the TTL removes those leftovers. A rule hash's ``updated_at`` is when it was last
    written. Writing only what changed keeps a round's cost to what the last two
    seconds of baskets moved, not to every rule held (tens of thousands on a wholesale shop).
    """
    keys = views.keys
    now = time.time() if now is None else now
    stamp = f"{now:.3f}"
    published = state.published
    members: dict[str, dict[str, float]] = {}
    written_rules: dict[tuple[tuple[str, ...], str], tuple[tuple[float, ...], float]] = {}
    changed = 0
    for rule in rules:
        if len(rule.antecedent) == 1:
            best = members.setdefault(rule.antecedent[0], {})
            if len(best) < top_n:
                best[rule.consequent] = rule.confidence
        ident = (rule.antecedent, rule.consequent)
        figures = (rule.support, rule.confidence, rule.lift, rule.count)
        before = published.rules.get(ident)
        if before is not None and not moved(before[0], figures) and not renewal_due(rule.consequent, before[1],
                                                                                     now, ttl):
            written_rules[ident] = before
            continue
        written_rules[ident] = (figures, now)
        changed += 1
        key = keys.reco_rule(rule.antecedent, rule.consequent)
        pipe.hset(key, mapping={
            "antecedent": json.dumps(list(rule.antecedent)), "consequent": rule.consequent,
            "support": f"{rule.support:.6g}", "confidence": f"{rule.confidence:.6g}", "lift": f"{rule.lift:.6g}",
            "count": f"{rule.count:.6g}", "updated_at": stamp,
        })
        pipe.expire(key, ttl)
    written_members: dict[str, tuple[dict[str, float], float]] = {}
    for sku, best in members.items():
        key = keys.reco_item(sku)
        before_members = published.members.get(sku)
        if before_members is not None and before_members[0] == best and not renewal_due(sku, before_members[1],
                                                                                         now, ttl):
            written_members[sku] = before_members
            continue
        written_members[sku] = (best, now)
        if before_members is not None and (stale := set(before_members[0]) - set(best)):
            pipe.zrem(key, *stale)
        pipe.zadd(key, best)
        pipe.expire(key, ttl)
    for sku, (before_best, _) in published.members.items():
        if sku not in members:
            pipe.zrem(keys.reco_item(sku), *before_best)
    for antecedent, consequent in published.rules.keys() - written_rules.keys():
        pipe.delete(keys.reco_rule(antecedent, consequent))
    published.members = written_members
    published.rules = written_rules
    if state.bestsellers is not None:
        for scope in state.bestsellers.scopes:
            top = dict(state.bestsellers.predict_one(scope))
            key = keys.reco_bestsellers() if scope == "global" else keys.reco_bestsellers_segment(scope)
            pipe.delete(key)
            if top:
                pipe.zadd(key, top)
    return changed
