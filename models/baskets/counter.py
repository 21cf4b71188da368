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

import copy
import math
import sys
import weakref
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
#: Factor by which creation rates (segments) and reported supports (queries) rise when a pass is over budget.
RATE_STEP = 1.5


class OverBudget(Exception):
    """A mining pass met more than ``max_entries`` untracked itemsets."""

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


#: One itemset met while mining a segment: (last SKU, its tracked extensions (``None``: none or untracked),
#: bitset of the segment baskets holding it, its count in the segment, the most it can have sold before
#: the segment, its upper count with the segment).
Member = tuple[str, "dict[str, Tracked] | None", int, float, float, float]
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
    for singles and pairs, ``itemset_epsilon`` (≥ ``epsilon``, by default
    equal) for three SKUs and more.

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
    ``ε₁ = ε₂ ≤ ε₃ = … = ε_max``: an untracked ``k``-itemset has ``c ≤ B_k``,
    where the level bound ``B_k`` grows by the creation count each segment
    used (``ε_k`` of the segment, so ``B_k = ε_k·N`` unless the budget below
    raised it): left out of a segment, it sold fewer than that count there
    and at most ``B_k`` before; dropped, ``c ≤ count + delta ≤ B_k``; never
    met, a subset is untracked, so ``c ≤ B_{k-1} ≤ B_k``. A tracked one
    counts every sale since it was tracked, and ``delta ≤ B_k`` at its
    creation. ``metrics()`` reports ``B_2/N`` and ``B_max/N``
    (``pair_error_bound``, ``itemset_error_bound``).

    Giant baskets (wholesale invoices of hundreds of SKUs) are never
    enumerated: only itemsets that recur in ``ε_k`` of a segment and whose
    two joined subsets are tracked are ever met, however many SKUs a basket
    holds. Budget: a mining pass that would start tracking more than
    ``max_entries`` itemsets is abandoned and redone with the creation rates
    of pairs and larger itemsets ×1.5 (each segment starts one step below
    the last one's rates), which raises ``B_k`` by what the pass used: on
    dense data the bound widens instead of memory exploding.

    Queries see every basket: the open (not yet full) segment is mined on
    each query (cached until the next basket) without changing the state,
    meeting only itemsets whose upper count can reach the asked support.
    :meth:`itemsets` with ``min_support = s`` reports every itemset whose
    upper count reaches ``sN`` (with the support ``count / N``): recall 1.0
    whenever ``B_k < sN``, and each reported support underestimates the
    true one by at most that itemset's own ``delta / N ≤ B_k / N``
    (:meth:`error_bound`). Within the first segment every count is exact
    (``delta = 0``). A query that would meet more than ``max_entries`` new
    itemsets (a giant basket among the first few) reports at a support
    raised ×1.5 (at least one basket) until it fits, and says so in
    ``reported_support``. Rules divide the itemset's count by its
    antecedent's.

    Memory: the open segment (at most ``segment`` baskets and one
    ``segment``-bit integer per SKU in it), the tracked entries (every one
    has an upper count above ``B_k``; at most ``max_entries`` start being
    tracked per segment) and, during a mining pass or a query, at most
    ``max_entries`` new itemsets plus the tracked ones met. Work per
    segment or query: one AND and popcount per itemset tried (the tracked
    ones present in the segment, and joins of two met entries that each
    reach the creation count).

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
        max_entries: int = 1_000_000,
        partition: int = 0,
        partitions: int = 1,
    ) -> None:
        itemset_epsilon = epsilon if itemset_epsilon is None else itemset_epsilon
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
        if top_n < 1 or max_entries < 1:
            raise ValueError("top_n and max_entries must be at least 1")
        self.epsilon = epsilon
        self.itemset_epsilon = itemset_epsilon
        self.max_size = max_size
        self.segment = segment
        self.half_life = half_life
        self.min_support = min_support
        self.min_confidence = min_confidence
        self.min_lift = min_lift
        self.top_n = top_n
        self.max_entries = max_entries
        self.partition = partition
        self.partitions = partitions
        self._n = 0
        self._weight: float = 0
        self._origin: float | None = None
        self._latest: float | None = None
        #: Weight of the closed segments (``N_before`` of the open one).
        self._closed: float = 0
        self._roots: dict[str, Tracked] = {}
        #: Per itemset size (index 0 unused): most an untracked itemset can have sold in the closed segments.
        self._bounds = [0.0] * (max_size + 1)
        #: Per size: the creation rate (share of a segment) the last segment used.
        self._rates = [0.0] + [self._level_epsilon(k) for k in range(1, max_size + 1)]
        #: The support the last query reported at (above the asked one when it was over budget).
        self.reported_support: float | None = None
        #: The open segment: its baskets (sorted SKUs), their weights, each SKU's bitset of positions in it.
        self._open: list[list[str]] = []
        self._open_weights: list[float] = []
        self._open_bits: dict[str, int] = {}
        #: Query results for the baskets counted so far, by support (cleared by every basket).
        self._views: dict[float, tuple[dict[Itemset, Count], float]] = {}
        #: The counters this one shares its tracked tables with (its snapshots, or the counter a snapshot
        #: was taken of): while one lives, the tables are copied before they next change here.
        self._shares_tables_with: list[weakref.ref[BasketCounter]] = []

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

    def _own_tables(self) -> None:
        """Copy the tracked tables before changing them if a live :meth:`snapshot` shares them (copy on write;
        a publication round drops its snapshots when it ends, so most segments close with nothing to copy)."""
        if any(shared() is not None for shared in self._shares_tables_with):
            self._roots = _tracked_tables(_plain_tables(self._roots))
        self._shares_tables_with = []

    def _rescale(self, shift: int) -> None:
        """Divide every weight by ``2**shift`` (exact in floating point) and move the origin."""
        assert self.half_life is not None and self._origin is not None
        self._own_tables()

        def scale(value: float) -> float:
            return math.ldexp(value, -shift)

        self._origin += shift * self.half_life
        self._weight, self._closed = scale(self._weight), scale(self._closed)
        self._bounds = [scale(b) for b in self._bounds]
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
        """Mine the full segment into the tables, then drop the entries that cannot be frequent.

        The creation rates start one step below the last segment's and go up a step (×1.5) while a mining
        pass would create more than ``max_entries`` itemsets; each level's bound grows by the count it used.
        """
        self._own_tables()
        size = sum(self._open_weights)
        base = [0.0] + [self._level_epsilon(k) for k in range(1, self.max_size + 1)]
        rates = [max(b, r / RATE_STEP) for b, r in zip(base, self._rates)]
        while True:
            try:
                met = self._mine([rate * size for rate in rates], None)
                break
            except OverBudget:
                rates = [rates[0], rates[1]] + [rate * RATE_STEP for rate in rates[2:]]
        for itemset, (count, delta) in met.items():
            level, entry = self._roots, None
            for sku in itemset[:-1]:
                entry = level[sku]
                if entry.children is None:
                    entry.children = {}
                level = entry.children
            tracked = level.get(itemset[-1])
            if tracked is None:
                level[itemset[-1]] = Tracked(count, delta)
            else:
                tracked.count = count
        self._rates = rates
        self._closed += size
        self._bounds = [bound + rate * size for bound, rate in zip(self._bounds, rates)]
        self._open, self._open_weights, self._open_bits = [], [], {}
        self._roots = _pruned(self._roots, self._bounds, 1)

    def _mine(self, creation: list[float], wanted: float | None) -> dict[Itemset, Count]:
        """Eclat over the open segment, depth first from each SKU; the met itemsets as ``(count, delta)``.

        Counts include the segment; nothing changes. Without ``wanted`` every met itemset is returned: the
        tracked ones that occur in the segment, and an untracked ``k``-itemset met with a segment count of at
        least ``creation[k]``. With ``wanted`` (a count, for queries) an untracked itemset is met when its
        upper count can reach ``wanted``, only itemsets whose upper count reaches it are returned or
        extended. Raises :class:`OverBudget` once more than ``max_entries`` untracked itemsets are met.
        """
        query = wanted is not None
        need = wanted if query else creation[1]
        bound = self._bounds[1]
        mass = int.bit_count if self.half_life is None else self._mass
        members: list[Member] = []
        found: dict[Itemset, Count] = {}
        for sku in sorted(self._open_bits):
            bits = self._open_bits[sku]
            count = mass(bits)
            entry = self._roots.get(sku)
            if entry is not None:
                before = entry.count + entry.delta
                members.append((sku, entry.children, bits, count, before, before + count))
                if not query or before + count >= need:
                    found[(sku,)] = (entry.count + count, entry.delta)
            elif count + (bound if query else 0.0) >= need:
                members.append((sku, None, bits, count, bound, count + bound))
                found[(sku,)] = (count, bound)
        budget = [self.max_entries]
        self._extend((), members, 1, creation, wanted, found, budget)
        return found

    def _extend(self, prefix: Itemset, members: list[Member], size: int, creation: list[float],
                wanted: float | None, found: dict[Itemset, Count], budget: list[int]) -> None:
        """Join the met ``size``-itemsets sharing ``prefix`` pairwise into ``size + 1``-itemsets."""
        if size >= self.max_size or len(members) < 2:
            return
        query, level = wanted is not None, size + 1
        bound = self._bounds[level]
        mass = int.bit_count if self.half_life is None else self._mass
        # Meeting an untracked itemset needs a segment count of creation[level], or an upper count of wanted.
        need = wanted if query else creation[level]
        by_sku = {m[0]: m for m in members}
        if query:
            seeds = [m for m in members if m[3] + min(bound, m[4]) >= need]
        else:
            seeds = [m for m in members if m[3] >= need]
        seed_skus = [m[0] for m in seeds]
        owned_only = size == 1 and self.partitions > 1
        for sku, children, bits, count, before, upper in members:
            if owned_only and owner_partition(sku, self.partitions) != self.partition:
                continue
            if query and upper < need:
                continue
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
                    child_upper = child_before + shared_count
                    joined.append((other, child.children, shared, shared_count, child_before, child_upper))
                    if not query or child_upper >= need:
                        found[(*itemset, other)] = (child.count + shared_count, child.delta)
                    continue
                delta = cap if cap < other_before else other_before
                if shared_count + (delta if query else 0.0) >= need:
                    joined.append((other, None, shared, shared_count, delta, shared_count + delta))
                    found[(*itemset, other)] = (shared_count, delta)
                    budget[0] -= 1
            if budget[0] < 0:
                raise OverBudget
            if joined:
                self._extend(itemset, joined, level, creation, wanted, found, budget)

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

    def snapshot(self) -> Self:
        """A frozen copy to query (mine itemsets and rules from, in another thread) while this counter counts on.

        Cheap whatever the counter holds: the open segment's lists are copied (references to its baskets),
        the tracked tables are shared while the copy lives (this counter copies them first if it changes them
        meanwhile: a segment closing, the weights rescaling). A query of the copy answers exactly as this
        counter would have when the copy was taken; :meth:`adopt_views` keeps its answers here if nothing was
        counted since.

        >>> counter = BasketCounter(min_support=0.5)
        >>> for basket in (["a", "b"], ["a", "b"], ["a"]):
        ...     counter.learn_one(basket)
        >>> frozen = counter.snapshot()
        >>> counter.learn_one(["c"])
        >>> frozen.itemsets()[("a", "b")], counter.itemsets()[("a", "b")]
        (0.6666666666666666, 0.5)
        """
        frozen = copy.copy(self)
        frozen._open, frozen._open_weights = list(self._open), list(self._open_weights)
        frozen._open_bits, frozen._views = dict(self._open_bits), dict(self._views)
        frozen._shares_tables_with = [weakref.ref(self)]
        live = [ref for ref in self._shares_tables_with if ref() is not None]
        self._shares_tables_with = [*live, weakref.ref(frozen)]
        return frozen

    def adopt_views(self, frozen: BasketCounter) -> None:
        """Keep the query results of a :meth:`snapshot` of this counter if no basket was counted since."""
        if frozen._n == self._n:
            self._views.update(frozen._views)
            self.reported_support = frozen.reported_support

    @property
    def n_baskets(self) -> int:
        """Baskets counted so far."""
        return self._n

    def _view(self, min_support: float) -> dict[Itemset, Count]:
        """Every itemset whose upper count reaches ``min_support`` of the baskets, open segment included."""
        cached = self._views.get(min_support)
        if cached is not None:
            self.reported_support = cached[1]
            return cached[0]
        wanted = min_support * self._weight
        found: dict[Itemset, Count] = {}
        while self._open:
            try:
                found = self._mine([], wanted)
                break
            except OverBudget:
                wanted = max(wanted * RATE_STEP, wanted + self._newest_weight())
        self.reported_support = wanted / self._weight if self._weight else min_support
        for itemset, entry in _walk(self._roots, (), wanted):
            if itemset not in found and entry.count + entry.delta >= wanted:
                found[itemset] = (entry.count, entry.delta)
        if self._weight:
            self._views[min_support] = (found, self.reported_support)
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
        return self._bounds[min(len(items), self.max_size)] / self._weight

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
            "pair_error_bound": self._bounds[min(2, self.max_size)] / total,
            "itemset_error_bound": self._bounds[-1] / total,
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
            "max_entries": self.max_entries,
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
            "bounds": list(self._bounds),
            "rates": list(self._rates),
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
        counter._bounds = list(state["bounds"])
        counter._rates = list(state["rates"])
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
