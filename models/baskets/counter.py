"""Frequent itemsets (1 to ``max_size`` SKUs) of an order stream, with a proven error bound.

River parts: :class:`BasketCounter` is a ``river.base.Estimator`` (River's
``clone``, ``repr``, parameters and estimator checks; ``learn_one`` on an
order record, ``predict_one`` on a cart). Not River: the counting itself.
River has no frequent-itemset or association-rule miner; its nearest part,
``sketch.HeavyHitters``, counts single items (Lossy Counting without decay),
while baskets need itemsets of up to five SKUs with a per-itemset error
bound, event-time decay and exact partitioning across workers, so that part
is written here: Manku & Motwani's Lossy Counting of itemsets (VLDB 2002,
§4: the stream is cut into segments of baskets, each mined as a whole) with
each segment mined by Eclat on per-SKU bitsets (Zaki 2000).
"""

from __future__ import annotations

import math
import sys
import zlib
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Self

from river import base

from models.base import check_state_tag
from models.baskets.recommend import CartRecommender
from models.baskets.rules import AssociationRule

#: Decayed weights are rescaled by an exact power of two once the newest basket weighs 2**RESCALE_AT.
RESCALE_AT = 64

Itemset = tuple[str, ...]


def owner_partition(sku: str, partitions: int) -> int:
    """The counter partition that owns ``sku`` (CRC-32, stable across processes and restarts).

    >>> owner_partition("85123A", 1), 0 <= owner_partition("85123A", 3) < 3
    (0, True)
    """
    return zlib.crc32(sku.encode("utf-8")) % partitions


def basket_of(x: Mapping[str, Any] | Iterable[str]) -> tuple[set[str], float | None]:
    """The SKU set and event time of an order record (``lines[*].sku``, ``ts``) or of a plain SKU iterable.

    SKUs are interned: the tables then hold one string per SKU, however many itemsets it is part of.
    """
    if isinstance(x, Mapping):
        return {sys.intern(line["sku"]) for line in x.get("lines", ())}, x.get("ts")
    if isinstance(x, str):
        raise TypeError("a basket is an order record or an iterable of SKUs, not a single string")
    return {sys.intern(sku) for sku in x}, None


class Tracked:
    """A tracked itemset: its true count lies in ``[count, count + delta]``; ``children`` extend it by a larger SKU."""

    __slots__ = ("count", "delta", "children")

    def __init__(self, count: float, delta: float) -> None:
        self.count = count
        self.delta = delta
        self.children: dict[str, Tracked] | None = None

    @property
    def upper(self) -> float:
        return self.count + self.delta


#: One itemset met while mining a segment: (last SKU, its entry (``None``: new, in a query), bitset of the
#: segment baskets holding it, its count in the segment, the most it can have sold before the segment,
#: its upper count with the segment (queries)).
Member = tuple[str, "Tracked | None", int, float, float, float]
#: A reported itemset: (count, delta).
Count = tuple[float, float]


class BasketCounter(base.Estimator):
    """Streaming frequent itemsets (1 to ``max_size`` SKUs) and association rules, with a stated error bound.

    A basket is the set of SKUs of one order (quantities do not matter). Every
    tracked itemset holds ``[count, delta]``: its true count ``c`` lies in
    ``[count, count + delta]``. The tracked itemsets form a prefix tree (an
    itemset's entry sits under the entry of its SKUs but the largest), so an
    itemset is only tracked while its prefix is. Let ``N`` be the number of
    baskets so far, ``ε_k`` the level error of ``k``-itemsets: ``epsilon``
    for singles and pairs, ``itemset_epsilon`` (≥ ``epsilon``) for three SKUs
    and more.

    Algorithm (Manku & Motwani's Lossy Counting of itemsets, 2002, §4): the
    stream is cut into segments of ``segment`` baskets (by count, so the
    state depends only on the baskets and their order, never on how the
    stream batches them). A segment is held as one bitset per SKU (bit ``i``:
    the segment's ``i``-th basket holds it) and, when full, mined by Eclat:
    an itemset's segment count is the popcount of its SKUs' bitsets ANDed.
    A ``k``-itemset is met when the two entries it joins (its prefix plus
    either of its last two SKUs) are tracked and it occurs in the segment; a
    tracked one adds its segment count, an untracked one becomes tracked when
    its segment count reaches ``ε_k`` times the segment's size, with
    ``delta = min(ε_k·N_before, upper counts of the two joined entries before
    the segment)``. After each segment, entries with ``count + delta ≤ ε_k·N``
    are dropped with the itemsets that extend them.

    Guarantee (undecayed), by induction over segments and sizes, with
    ``ε₁ = ε₂ ≤ ε₃ = … = ε_max``: an untracked ``k``-itemset has ``c ≤ ε_k·N``
    (left out of a segment: below ``ε_k`` of it, and at most ``ε_k·N_before``
    before; dropped: ``c ≤ count + delta ≤ ε_k·N``; never met: a subset is
    untracked, so ``c ≤ ε_{k-1}·N ≤ ε_k·N``); a tracked one counts every
    sale since it was tracked and ``delta ≤ ε_k·N``. Giant baskets (wholesale
    invoices of hundreds of SKUs) cost nothing extra: only itemsets that
    recur in ``ε_k`` of a segment and whose joined subsets are tracked are
    ever created, however many SKUs a basket holds.

    Queries see every basket: the open (not yet full) segment is mined on
    each query (cached until the next basket) without changing the state,
    creating only itemsets whose upper count can reach the asked support.
    :meth:`itemsets` with ``min_support = s`` reports every itemset whose
    upper count reaches ``sN`` (with the support ``count / N``): recall 1.0
    whenever ``ε_k < s``, and each reported support underestimates the true
    one by at most that itemset's own ``delta / N ≤ ε_k``
    (:meth:`error_bound`). Within the first segment every count is exact
    (``delta = 0``). Rules divide the itemset's count by its antecedent's.

    Memory: the open segment (at most ``segment`` baskets and one
    ``segment``-bit integer per SKU in it) and the tracked entries: every
    tracked ``k``-itemset has an upper count above ``ε_k·N``, so after a
    segment the tables hold at most the itemsets whose upper bounds exceed
    ``ε_k·N`` (for disjoint-ish baskets of ``m`` SKUs, at most
    ``C(m, k)/ε_k`` per size; dense wholesale data approach the FP-Growth
    output at support ``ε_k``, so keep ``itemset_epsilon`` close to
    ``min_support`` there). Work per segment: one AND and popcount per met
    itemset (tracked ones present in the segment, and pairs of entries
    that each reach the creation count).

    Time decay (``half_life`` in event-time seconds): a basket at event time
    ``t`` weighs ``2**((t - now) / half_life)``; counts, ``N`` and segment
    sizes become decayed weights and the guarantee holds unchanged (a basket
    at the latest event time weighs 1). Weights are kept relative to an
    origin and rescaled by exact powers of two, so checkpoints stay exact.
    Decayed segment counts sum the weights of the bits set, so they cost
    more than a popcount.

    Partitioned mode (``partition`` of ``partitions``): every partition must
    receive every basket (the stream broadcasts packed baskets); it counts
    ``N`` and all singles, but an itemset of size ≥ 2 only when
    :func:`owner_partition` of its smallest SKU is ``partition``. Each itemset
    is thus counted by exactly one partition, with exactly the numbers an
    unpartitioned counter would have. A rule ``X → y`` is produced by the
    owner of ``min(X ∪ {y})``; when its antecedent lives elsewhere the
    antecedent's support comes from its owner: pass the other partitions'
    :meth:`itemsets` as ``foreign_supports`` to :meth:`rules`. The union of the
    partitions' rules equals the unpartitioned counter's rules.

    >>> counter = BasketCounter(epsilon=0.05, itemset_epsilon=0.1, min_support=0.2, min_confidence=0.5, segment=64)
    >>> for basket in [["tea", "scones", "jam"], ["tea", "scones"], ["tea", "milk"], ["scones", "jam"]] * 50:
    ...     counter.learn_one(basket)
    >>> counter.itemsets()[("jam", "scones", "tea")], counter.error_bound(("jam", "scones", "tea"))
    (0.25, 0.0)
    >>> [(r.antecedent, r.consequent, r.confidence, round(r.lift, 2)) for r in counter.rules()][:3]
    [(('jam',), 'scones', 1.0, 1.33), (('jam', 'tea'), 'scones', 1.0, 1.33), (('milk',), 'tea', 1.0, 1.33)]

    Suggestions for a cart: rules first, then best-sellers (scored by support):

    >>> counter.predict_one(["jam"])
    [('scones', 1.0), ('tea', 0.75), ('milk', 0.25)]
    """

    MODEL = "BasketCounter"
    VERSION = 3

    @property
    def _supervised(self) -> bool:
        return False

    def __init__(
        self,
        epsilon: float = 0.002,
        itemset_epsilon: float | None = None,
        max_size: int = 5,
        segment: int = 2048,
        half_life: float | None = None,
        min_support: float = 0.01,
        min_confidence: float = 0.1,
        min_lift: float = 1.0,
        top_n: int = 10,
        partition: int = 0,
        partitions: int = 1,
    ) -> None:
        itemset_epsilon = max(epsilon, 0.9 * min_support) if itemset_epsilon is None else itemset_epsilon
        if not 0 < epsilon <= itemset_epsilon < 1:
            raise ValueError("need 0 < epsilon <= itemset_epsilon < 1")
        if not itemset_epsilon < min_support <= 1:
            raise ValueError("min_support must exceed itemset_epsilon and epsilon (the error bounds) and be at most 1")
        if not 1 <= max_size <= 8:
            raise ValueError("max_size must be 1 to 8")
        if segment < 1:
            raise ValueError("segment must be at least 1 basket")
        if half_life is not None and half_life <= 0:
            raise ValueError("half_life must be positive")
        if not 0 <= partition < partitions:
            raise ValueError("need 0 <= partition < partitions")
        if top_n < 1:
            raise ValueError("top_n must be at least 1")
        self.epsilon = epsilon
        self.itemset_epsilon = itemset_epsilon
        self.max_size = max_size
        self.segment = segment
        self.half_life = half_life
        self.min_support = min_support
        self.min_confidence = min_confidence
        self.min_lift = min_lift
        self.top_n = top_n
        self.partition = partition
        self.partitions = partitions
        self._n = 0
        self._weight: float = 0
        self._origin: float | None = None
        self._latest: float | None = None
        #: Weight of the closed segments (``N_before`` of the open one).
        self._closed: float = 0
        self._roots: dict[str, Tracked] = {}
        #: The open segment: its baskets (sorted SKUs), their weights, each SKU's bitset of positions in it.
        self._open: list[list[str]] = []
        self._open_weights: list[float] = []
        self._open_bits: dict[str, int] = {}
        #: Query results for the baskets counted so far, by support (cleared by every basket).
        self._views: dict[float, dict[Itemset, Count]] = {}

    # Learning.

    def learn_one(self, x: Mapping[str, Any] | Iterable[str], y: None = None) -> None:
        """Count one basket: an order record or an iterable of SKUs.

        A basket without an event time (a plain iterable) is stamped with the
        latest event time seen.
        """
        items, ts = basket_of(x)
        weight = self._advance(ts)
        self._n += 1
        self._weight += weight
        self._views = {}
        basket = sorted(items)
        bit, bits = 1 << len(self._open), self._open_bits
        for sku in basket:
            bits[sku] = bits.get(sku, 0) | bit
        self._open.append(basket)
        self._open_weights.append(weight)
        if len(self._open) == self.segment:
            self._close_segment()

    def _advance(self, ts: float | None) -> float:
        """Move the event-time clock to ``ts``; the basket's weight in the counter's units."""
        ts = (self._latest or 0.0) if ts is None else float(ts)
        if self._origin is None:
            self._origin = ts
        self._latest = ts if self._latest is None else max(self._latest, ts)
        if self.half_life is None:
            return 1
        shift = math.floor((self._latest - self._origin) / self.half_life)
        if shift >= RESCALE_AT:
            self._rescale(shift)
        return self._decay_weight(ts)

    def _decay_weight(self, ts: float) -> float:
        assert self.half_life is not None and self._origin is not None
        return 2.0 ** ((ts - self._origin) / self.half_life)

    def _rescale(self, shift: int) -> None:
        """Divide every weight by ``2**shift`` (exact in floating point) and move the origin."""
        assert self.half_life is not None and self._origin is not None

        def scale(value: float) -> float:
            return math.ldexp(value, -shift)

        self._origin += shift * self.half_life
        self._weight, self._closed = scale(self._weight), scale(self._closed)
        self._open_weights = [scale(w) for w in self._open_weights]
        for _, entry in _walk(self._roots, ()):
            entry.count, entry.delta = scale(entry.count), scale(entry.delta)

    def _level_epsilon(self, size: int) -> float:
        return self.epsilon if size <= 2 else self.itemset_epsilon

    def _mass(self, positions: int) -> float:
        """Total weight of the open segment's baskets at ``positions`` (a bitset)."""
        if self.half_life is None:
            return positions.bit_count()
        weights, total = self._open_weights, 0.0
        while positions:
            lowest = positions & -positions
            total += weights[lowest.bit_length() - 1]
            positions ^= lowest
        return total

    def _close_segment(self) -> None:
        """Mine the full segment into the tables, then drop the entries that cannot be frequent."""
        size = sum(self._open_weights)
        self._mine([self._level_epsilon(k) * size for k in range(self.max_size + 1)], None)
        self._closed += size
        self._open, self._open_weights, self._open_bits = [], [], {}
        floors = [self._level_epsilon(k) * self._closed for k in range(self.max_size + 1)]
        self._roots = _pruned(self._roots, floors, 1)

    def _mine(self, creation: list[float], wanted: float | None) -> dict[Itemset, Count]:
        """Eclat over the open segment, depth first from each SKU.

        Without ``wanted`` the tables are updated: every met tracked itemset adds its segment count, and an
        untracked ``k``-itemset met with a segment count of at least ``creation[k]`` becomes tracked. With
        ``wanted`` (a count) nothing changes: the met itemsets whose upper count (segment included) reaches
        it are returned as ``(count, delta)``; an untracked one is met when its upper count can reach it.
        """
        query = wanted is not None
        need = wanted if query else creation[1]
        bound = self._level_epsilon(1) * self._closed
        mass = int.bit_count if self.half_life is None else self._mass
        members: list[Member] = []
        found: dict[Itemset, Count] = {}
        for sku in sorted(self._open_bits):
            bits = self._open_bits[sku]
            count = mass(bits)
            entry = self._roots.get(sku)
            if entry is not None:
                before = entry.count + entry.delta
                if query:
                    members.append((sku, entry, bits, count, before, before + count))
                else:
                    entry.count += count
                    members.append((sku, entry, bits, count, before, 0.0))
            elif count + (bound if query else 0.0) >= need:
                if not query:
                    entry = self._roots[sku] = Tracked(count, bound)
                members.append((sku, entry, bits, count, bound, count + bound))
        if query:
            for sku, entry, _, count, before, upper in members:
                if upper >= wanted:
                    found[(sku,)] = (entry.count + count, entry.delta) if entry else (count, before)
        self._extend((), members, 1, creation, wanted, found)
        return found

    def _extend(self, prefix: Itemset, members: list[Member], size: int, creation: list[float],
                wanted: float | None, found: dict[Itemset, Count]) -> None:
        """Join the met ``size``-itemsets sharing ``prefix`` pairwise into ``size + 1``-itemsets."""
        if size >= self.max_size or len(members) < 2:
            return
        query, level = wanted is not None, size + 1
        bound = self._level_epsilon(level) * self._closed
        mass = int.bit_count if self.half_life is None else self._mass
        # Creating needs a segment count of creation[level] (update), or count + delta reaching wanted (query).
        need = wanted if query else creation[level]
        by_sku = {m[0]: m for m in members}
        if query:
            seeds = [m for m in members if m[3] + min(bound, m[4]) >= need]
        else:
            seeds = [m for m in members if m[3] >= need]
        seed_skus = [m[0] for m in seeds]
        owned_only = size == 1 and self.partitions > 1
        for sku, entry, bits, count, before, upper in members:
            if owned_only and owner_partition(sku, self.partitions) != self.partition:
                continue
            if query and upper < need:
                continue
            children = entry.children if entry is not None else None
            partners = [by_sku[c] for c in children if c in by_sku] if children else []
            cap = bound if bound < before else before
            if count + (cap if query else 0.0) >= need:
                later = seeds[bisect_right(seed_skus, sku):]
                partners += [m for m in later if m[0] not in children] if children else later
            if not partners:
                continue
            partners.sort()
            itemset = (*prefix, sku)
            joined: list[Member] = []
            for other, _, other_bits, _, other_before, _ in partners:
                shared = bits & other_bits
                if not shared:
                    continue
                shared_count = mass(shared)
                child = children.get(other) if children else None
                if child is not None:
                    child_before = child.count + child.delta
                    if query:
                        child_upper = child_before + shared_count
                        joined.append((other, child, shared, shared_count, child_before, child_upper))
                        if child_upper >= wanted:
                            found[(*itemset, other)] = (child.count + shared_count, child.delta)
                    else:
                        child.count += shared_count
                        joined.append((other, child, shared, shared_count, child_before, 0.0))
                    continue
                delta = cap if cap < other_before else other_before
                if query:
                    if shared_count + delta >= need:
                        joined.append((other, None, shared, shared_count, delta, shared_count + delta))
                        found[(*itemset, other)] = (shared_count, delta)
                elif shared_count >= need:
                    child = Tracked(shared_count, delta)
                    if entry.children is None:
                        entry.children = {}
                    entry.children[other] = child
                    joined.append((other, child, shared, shared_count, delta, 0.0))
            if joined:
                self._extend(itemset, joined, level, creation, wanted, found)

    @property
    def latest_ts(self) -> float | None:
        """The latest event time counted (``None`` before the first basket)."""
        return self._latest

    def _newest_weight(self) -> float:
        """Weight of a basket at the latest event time (1 without decay)."""
        if self.half_life is None or self._latest is None:
            return 1
        return self._decay_weight(self._latest)

    # Queries.

    @property
    def n_baskets(self) -> int:
        """Baskets counted so far."""
        return self._n

    def _view(self, min_support: float) -> dict[Itemset, Count]:
        """Every itemset whose upper count reaches ``min_support`` of the baskets, open segment included."""
        cached = self._views.get(min_support)
        if cached is not None:
            return cached
        wanted = min_support * self._weight
        found = self._mine([], wanted) if self._open else {}
        for itemset, entry in _walk(self._roots, (), wanted):
            if itemset not in found and entry.count + entry.delta >= wanted:
                found[itemset] = (entry.count, entry.delta)
        if self._weight:
            self._views[min_support] = found
        return found

    def _tracked(self, items: list[str]) -> Tracked | None:
        level: dict[str, Tracked] | None = self._roots
        entry = None
        for sku in items:
            entry = level.get(sku) if level else None
            if entry is None:
                return None
            level = entry.children
        return entry

    def error_bound(self, itemset: Iterable[str]) -> float:
        """Largest possible underestimate of ``itemset``'s support: its own ``delta``, or its level's bound.

        The level bound ``ε_k·N_before`` covers an itemset untracked before the open segment (whose sales in
        the open segment are counted exactly when it is reported).
        """
        items = sorted(itemset)
        if not items or self._weight == 0:
            return 0.0
        entry = self._tracked(items)
        if entry is not None:
            return entry.delta / self._weight
        size = min(len(items), self.max_size)
        return self._level_epsilon(size) * self._closed / self._weight

    def _counts(self, min_support: float) -> dict[Itemset, float]:
        """Itemsets whose upper count reaches ``min_support``, with their counts (counter units)."""
        if self._weight == 0:
            return {}
        return {itemset: count for itemset, (count, _) in self._view(min_support).items()}

    def itemsets(self, min_support: float | None = None) -> dict[Itemset, float]:
        """Every itemset whose true support may reach ``min_support``, with its estimated support.

        Keys are sorted tuples of SKUs; an itemset is reported when its upper
        count (``count + delta``) reaches the threshold, so recall is 1.0. A
        partition reports all singles and only the larger itemsets it owns.
        """
        support = self.min_support if min_support is None else min_support
        if self._weight == 0:
            return {}
        return {itemset: count / self._weight for itemset, (count, _) in self._view(support).items()}

    def rules(
        self,
        min_support: float | None = None,
        min_confidence: float | None = None,
        min_lift: float | None = None,
        max_antecedent: int = 2,
        foreign_supports: Mapping[Itemset, float] | None = None,
    ) -> list[AssociationRule]:
        """Rules ``X → y`` (``|X| ≤ max_antecedent``, one consequent) of the reported itemsets.

        Thresholds default to the counter's settings. Confidence is the
        itemset's count over the antecedent's count (capped at 1), lift the
        confidence over the consequent's support. An antecedent must itself be
        reported; in partitioned mode one owned by another partition is looked
        up in ``foreign_supports`` (that partition's :meth:`itemsets`). Best
        confidence first.
        """
        support = self.min_support if min_support is None else min_support
        confidence = self.min_confidence if min_confidence is None else min_confidence
        lift = self.min_lift if min_lift is None else min_lift
        counts = self._counts(support)
        supports = dict(foreign_supports or {}) | {i: c / self._weight for i, c in counts.items()}
        scale = self._newest_weight()
        found = []
        for itemset, count in counts.items():
            if len(itemset) < 2 or len(itemset) > max_antecedent + 1:
                continue
            for consequent in itemset:
                antecedent = tuple(sku for sku in itemset if sku != consequent)
                if antecedent not in supports or (consequent,) not in supports:
                    continue
                rule_support = count / self._weight
                rule_confidence = min(1.0, rule_support / supports[antecedent])
                rule_lift = rule_confidence / supports[(consequent,)]
                if rule_confidence >= confidence and rule_lift >= lift:
                    found.append(
                        AssociationRule(antecedent, consequent, rule_support, rule_confidence, rule_lift, count / scale)
                    )
        found.sort(key=lambda r: (-r.confidence, -r.lift, -r.support, r.antecedent, r.consequent))
        return found

    def top_consequents(self, sku: str, n: int | None = None) -> list[tuple[str, float]]:
        """The best consequents of rules ``sku → y`` with their confidences (what ``kairos:reco:item`` holds)."""
        return self._consequents(n).get(sku, [])

    def _consequents(self, n: int | None) -> dict[str, list[tuple[str, float]]]:
        """Top consequents of every single-SKU antecedent, best confidence first."""
        by_item: dict[str, list[tuple[str, float]]] = {}
        for rule in self.rules(max_antecedent=1):
            by_item.setdefault(rule.antecedent[0], []).append((rule.consequent, rule.confidence))
        limit = self.top_n if n is None else n
        return {sku: consequents[:limit] for sku, consequents in by_item.items()}

    def best_sellers(self, n: int | None = None) -> list[tuple[str, float]]:
        """The SKUs in most baskets with their supports, best first (frequent singles only)."""
        singles = [(itemset[0], s) for itemset, s in self.itemsets().items() if len(itemset) == 1]
        singles.sort(key=lambda pair: (-pair[1], pair[0]))
        return singles[: self.top_n if n is None else n]

    def predict_one(self, x: Mapping[str, Any] | Iterable[str]) -> list[tuple[str, float]]:
        """Top SKUs to suggest for a cart, as the serving layer would suggest them.

        :class:`CartRecommender` over this counter's single-SKU rules, falling
        back to its best-sellers (scored by support). Costs one query of the tables.
        """
        cart, _ = basket_of(x)
        consequents = self._consequents(None)
        picks = CartRecommender(self.top_n).recommend(
            cart, {sku: consequents.get(sku, []) for sku in cart}, global_best=self.best_sellers(self.top_n + len(cart))
        )
        return [(p.sku, p.score) for p in picks]

    def memory_entries(self) -> dict[str, int]:
        """Tracked entries per itemset size (``size_1`` …), and the baskets of the open segment."""
        sizes = {f"size_{k}": 0 for k in range(1, self.max_size + 1)}
        for itemset, _ in _walk(self._roots, ()):
            sizes[f"size_{len(itemset)}"] += 1
        return {**sizes, "open_baskets": len(self._open)}

    def metrics(self) -> dict[str, float]:
        """Baskets counted, tracked entries per size and the level error bounds (support units)."""
        total = self._weight or 1.0
        return {
            "baskets": self._n,
            **{f"entries_{size}": count for size, count in self.memory_entries().items()},
            "pair_error_bound": self.epsilon * self._closed / total,
            "itemset_error_bound": self.itemset_epsilon * self._closed / total,
        }

    # Checkpoints.

    def _params(self) -> dict[str, Any]:
        return {
            "epsilon": self.epsilon,
            "itemset_epsilon": self.itemset_epsilon,
            "max_size": self.max_size,
            "segment": self.segment,
            "half_life": self.half_life,
            "min_support": self.min_support,
            "min_confidence": self.min_confidence,
            "min_lift": self.min_lift,
            "top_n": self.top_n,
            "partition": self.partition,
            "partitions": self.partitions,
        }

    def state_dict(self) -> dict[str, Any]:
        """Plain-data checkpoint: parameters, clock, every tracked entry (nested by prefix) and the open segment.

        An entry is ``[count, delta, {next SKU: entry}]``.
        """
        return {
            "model": self.MODEL,
            "version": self.VERSION,
            "params": self._params(),
            "n": self._n,
            "weight": self._weight,
            "origin": self._origin,
            "latest": self._latest,
            "closed": self._closed,
            "tables": _plain_tables(self._roots),
            "open": [list(basket) for basket in self._open],
            "open_weights": list(self._open_weights),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """Rebuild from :meth:`state_dict` output."""
        check_state_tag(state, cls.MODEL, cls.VERSION)
        counter = cls(**state["params"])
        counter._n = state["n"]
        counter._weight = state["weight"]
        counter._origin = state["origin"]
        counter._latest = state["latest"]
        counter._closed = state["closed"]
        counter._roots = _tracked_tables(state["tables"])
        counter._open_weights = list(state["open_weights"])
        for position, basket in enumerate(state["open"]):
            counter._open.append([sys.intern(sku) for sku in basket])
            for sku in counter._open[-1]:
                counter._open_bits[sku] = counter._open_bits.get(sku, 0) | (1 << position)
        return counter


def _walk(level: dict[str, Tracked] | None, prefix: Itemset,
          wanted: float | None = None) -> Iterator[tuple[Itemset, Tracked]]:
    """Every entry under ``level`` with its itemset; with ``wanted``, not below entries whose upper count is smaller."""
    for sku, entry in (level or {}).items():
        itemset = (*prefix, sku)
        yield itemset, entry
        if entry.children and (wanted is None or entry.upper >= wanted):
            yield from _walk(entry.children, itemset, wanted)


def _pruned(level: dict[str, Tracked], floors: list[float], size: int) -> dict[str, Tracked]:
    """``level`` without the entries whose upper count is at most their size's floor (nor what extends them)."""
    kept = {}
    for sku, entry in level.items():
        if entry.upper > floors[size]:
            if entry.children:
                entry.children = _pruned(entry.children, floors, size + 1) or None
            kept[sku] = entry
    return kept


def _plain_tables(level: dict[str, Tracked]) -> dict[str, list[Any]]:
    return {sku: [e.count, e.delta, _plain_tables(e.children) if e.children else {}] for sku, e in level.items()}


def _tracked_tables(plain: dict[str, list[Any]]) -> dict[str, Tracked]:
    level = {}
    for sku, (count, delta, children) in plain.items():
        entry = level[sys.intern(sku)] = Tracked(count, delta)
        entry.children = _tracked_tables(children) if children else None
    return level
