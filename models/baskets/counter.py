"""Frequent items, pairs and triples of an order stream, with a proven error bound in bounded memory.

River parts: :class:`BasketCounter` is a ``river.base.Estimator`` (River's
``clone``, ``repr``, parameters and estimator checks; ``learn_one`` on an
order record, ``predict_one`` on a cart). Not River: the counting itself.
River has no frequent-itemset or association-rule miner; its nearest part,
``sketch.HeavyHitters``, counts single items (Lossy Counting without decay),
while baskets need pairs and triples with Apriori pruning, a per-itemset
error bound, event-time decay, a look-back window and exact partitioning
across workers, so that part is written here.
"""

from __future__ import annotations

import math
import sys
import zlib
from collections.abc import Iterable, Mapping
from typing import Any, Self

from river import base

from models.base import check_state_tag
from models.baskets.recommend import CartRecommender
from models.baskets.rules import AssociationRule

#: Decayed weights are rescaled by an exact power of two once the newest basket weighs 2**RESCALE_AT.
RESCALE_AT = 64

#: A tracked itemset: ``[count, delta]``; its true count lies in ``[count, count + delta]``.
Entry = list[float]
Itemset = tuple[str, ...]
#: An open partner ``b`` of a triple's smallest SKU ``a``: ``(b, upper count of {a, b} with this basket)``.
Partner = tuple[str, float]


def owner_partition(sku: str, partitions: int) -> int:
    """The counter partition that owns ``sku`` (CRC-32, stable across processes and restarts).

    >>> owner_partition("85123A", 1), 0 <= owner_partition("85123A", 3) < 3
    (0, True)
    """
    return zlib.crc32(sku.encode("utf-8")) % partitions


def basket_of(x: Mapping[str, Any] | Iterable[str]) -> tuple[set[str], float | None]:
    """The SKU set and event time of an order record (``lines[*].sku``, ``ts``) or of a plain SKU iterable.

    SKUs are interned: the tables then hold one string per SKU, however many pairs it is part of.
    """
    if isinstance(x, Mapping):
        return {sys.intern(line["sku"]) for line in x.get("lines", ())}, x.get("ts")
    if isinstance(x, str):
        raise TypeError("a basket is an order record or an iterable of SKUs, not a single string")
    return {sys.intern(sku) for sku in x}, None


def _upper(entry: Entry) -> float:
    return entry[0] + entry[1]


class BasketCounter(base.Estimator):
    """Streaming frequent itemsets (sizes 1 to 3) and association rules: Lossy Counting with Apriori pruning.

    A basket is the set of SKUs of one order (quantities do not matter). Every
    itemset size keeps a table of ``[count, delta]`` entries: the itemset's
    true count ``c`` lies in ``[count, count + delta]``. Let ``N`` be the
    number of baskets so far, ``ε = epsilon`` and ``ε₃ = triple_epsilon``.

    Guarantee (undecayed):

    * Singles and pairs (Manku & Motwani's Lossy Counting, 2002): every pair
      of every basket is counted; every ``w = ⌈1/ε⌉`` baskets the entries with
      ``count + delta ≤ εN`` are dropped. A tracked entry has
      ``delta ≤ εN``; an untracked single or pair has ``c ≤ εN``.
    * Triples (Apriori, no per-basket cap): a basket counts the triple
      ``{a < b < c}`` when the two pairs holding its smallest SKU, ``{a, b}``
      and ``{a, c}``, are *open*: their upper counts before this basket exceed
      the triple floor ``ε₃N′`` (``N′`` at the last triple prune). Triples are
      pruned every ``w₃ = ⌈1/ε₃⌉`` baskets and with every pair prune: those
      with ``count + delta ≤ ε₃N`` or a pair no longer open go. An open pair
      stays open until the next prune, so a tracked triple counts every sale,
      and a triple left out of a basket has ``c ≤ ε₃N + 1`` (the ``1`` is that
      basket): every ``delta ≤ ε₃N + 1`` and an untracked triple has
      ``c ≤ ε₃N + 1``.
    * Look-back: the last ``lookback`` to ``2·lookback`` baskets (default
      ``w``) stay indexed as per-SKU bitsets. An itemset entering its table
      counts its sales in those baskets at once, so its ``delta`` only covers
      sales before them (and is at most the pre-window upper count of each of
      its pairs): an itemset whose pairs turn frequent within ``lookback``
      baskets of its first sale is counted exactly, and so is one that was
      dropped and comes back within the window.

    :meth:`itemsets` with ``min_support = s`` reports every tracked itemset
    whose upper count ``count + delta`` reaches ``sN`` (with the support
    ``count / N``): recall 1.0 while the level bounds stay below ``s``, and
    each reported support underestimates the true one by at most that
    itemset's own ``delta / N`` (:meth:`error_bound`). Rules divide the
    itemset's count by its antecedent's.

    Optional ``triple_budget``: a hard cap on triple candidates per basket (a
    latency guard for adversarial streams). Each smallest SKU ``a`` of a basket
    of ``k`` SKUs with more than ``triple_budget / k`` candidates keeps its open
    partners with the highest pair counts; ``Θ(a)``, the largest pair count
    left out, joins ``a``'s triple bound: ``max(ε₃N + 1, Θ(a))``
    (``metrics()["triples_restricted"]`` counts the cuts).

    Memory: singles and pairs obey Manku & Motwani's lemma: after
    ``B = N / w`` buckets a table holds at most ``w·m·(1 + H_B)`` entries
    (``H_B ≈ ln B + 0.58``, ``m`` the largest per-bucket mean of singles, or of
    ``k(k-1)/2`` pairs, per basket), growing with ``log N``. An open pair has
    ``c > ε₃N′ − εN ≥ (ε₃ − ε)N − 1``, so with ``ε₃ > ε`` there are about
    ``P/(ε₃ − ε)`` of them at most (``P`` the mean pairs per basket; never more
    than the pair table). A basket with ``o`` open pairs among its ``k`` SKUs
    adds at most ``o·(k − 2)/2`` triple candidates, and after a triple prune
    the table holds only triples of two open pairs: at most
    ``Σ_a D_a(D_a − 1)/2`` entries (``D_a`` the open pairs led by ``a``).
    Before the first triple prune (``N′ = 0``) a pair is open once sold twice:
    a stream that opens with many repeated huge baskets needs
    ``triple_budget``. The look-back holds at most ``2·lookback`` baskets.
    Work per basket: ``k`` singles, ``k(k-1)/2`` pairs, the triple candidates,
    and one bitset intersection per entry created with a look-back sale.

    Time decay (``half_life`` in event-time seconds): a basket at event time
    ``t`` weighs ``2**((t - now) / half_life)``; every count and ``N`` become
    decayed weights and the error guarantee holds unchanged with ``N`` the
    decayed number of baskets (a basket at the latest event time weighs 1).
    An old pair fades below the floor and is pruned like a rare one, so the
    tables follow the recent baskets while new trends rise. Weights are kept
    relative to an origin and rescaled by exact powers of two, so
    checkpoints stay exact.

    Partitioned mode (``partition`` of ``partitions``): every partition must
    receive every basket (the stream broadcasts packed baskets); it counts
    ``N`` and all singles, but an itemset of size ≥ 2 only when
    :func:`owner_partition` of its smallest SKU is ``partition``. Each pair
    and triple is thus counted by exactly one partition, with exactly the
    numbers an unpartitioned counter would have. A rule ``X → y`` is produced
    by the owner of ``min(X ∪ {y})``; the one case whose antecedent lives
    elsewhere (``{b, c} → a`` with ``a < b < c``) needs the antecedent's
    support from its owner: pass the other partitions' :meth:`itemsets` as
    ``foreign_supports`` to :meth:`rules`. The union of the partitions'
    rules equals the unpartitioned counter's rules.

    >>> counter = BasketCounter(epsilon=0.05, min_support=0.2, min_confidence=0.5)
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
    VERSION = 2

    @property
    def _supervised(self) -> bool:
        return False

    def __init__(
        self,
        epsilon: float = 0.002,
        triple_epsilon: float | None = None,
        max_size: int = 3,
        half_life: float | None = None,
        min_support: float = 0.01,
        min_confidence: float = 0.1,
        min_lift: float = 1.0,
        top_n: int = 10,
        lookback: int | None = None,
        triple_budget: int | None = None,
        partition: int = 0,
        partitions: int = 1,
    ) -> None:
        triple_epsilon = epsilon if triple_epsilon is None else triple_epsilon
        if not 0 < epsilon <= triple_epsilon < 1:
            raise ValueError("need 0 < epsilon <= triple_epsilon < 1")
        if not epsilon < min_support <= 1:
            raise ValueError("min_support must exceed epsilon (the error bound) and be at most 1")
        if max_size not in (1, 2, 3):
            raise ValueError("max_size must be 1, 2 or 3")
        if half_life is not None and half_life <= 0:
            raise ValueError("half_life must be positive")
        if not 0 <= partition < partitions:
            raise ValueError("need 0 <= partition < partitions")
        if top_n < 1 or (triple_budget is not None and triple_budget < 1):
            raise ValueError("top_n and triple_budget must be at least 1")
        if lookback is not None and lookback < 0:
            raise ValueError("lookback must be at least 0")
        self.epsilon = epsilon
        self.triple_epsilon = triple_epsilon
        self.max_size = max_size
        self.half_life = half_life
        self.min_support = min_support
        self.min_confidence = min_confidence
        self.min_lift = min_lift
        self.top_n = top_n
        self.triple_budget = triple_budget
        self.partition = partition
        self.partitions = partitions
        #: Baskets per bucket; singles and pairs are pruned when a bucket closes.
        self.bucket_width = math.ceil(round(1 / epsilon, 9))
        #: Baskets per triple bucket.
        self.triple_bucket_width = math.ceil(round(1 / triple_epsilon, 9))
        #: Baskets kept at least for counting an entering itemset's earlier sales.
        self.lookback = self.bucket_width if lookback is None else lookback
        self._n = 0
        self._weight: float = 0
        self._origin: float | None = None
        self._latest: float | None = None
        self._floor = 0.0
        self._triple_floor = 0.0
        self._cuts = 0
        self._singles: dict[str, Entry] = {}
        self._pairs: dict[str, dict[str, Entry]] = {}
        self._triples: dict[str, dict[str, dict[str, Entry]]] = {}
        #: Θ(a): the largest pair count a budget cut left out of a's triple candidates.
        self._left_out: dict[str, float] = {}
        #: The look-back baskets (sorted SKUs), their weights, and each SKU's bitset of positions in them.
        self._window: list[list[str]] = []
        self._window_weights: list[float] = []
        self._window_bits: dict[str, int] = {}

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
        basket = sorted(items)
        for sku in basket:
            self._count_single(sku, weight)
        if self.max_size >= 2 and len(basket) > 1:
            self._count_pairs(basket, items, weight)
        self._remember(basket, weight)
        if self._n % self.bucket_width == 0:
            self._prune()
        elif self._n % self.triple_bucket_width == 0:
            self._prune_triples()

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
        self._weight, self._floor, self._triple_floor = map(scale, (self._weight, self._floor, self._triple_floor))
        self._left_out = {sku: scale(w) for sku, w in self._left_out.items()}
        self._window_weights = [scale(w) for w in self._window_weights]
        for entry in self._entries():
            entry[0], entry[1] = scale(entry[0]), scale(entry[1])

    def _entries(self) -> Iterable[Entry]:
        yield from self._singles.values()
        for row in self._pairs.values():
            yield from row.values()
        for by_b in self._triples.values():
            for row in by_b.values():
                yield from row.values()

    def _seen(self, positions: int) -> float:
        """Total weight of the look-back baskets at ``positions`` (a bitset)."""
        if self.half_life is None:
            return positions.bit_count()
        weights, total = self._window_weights, 0.0
        while positions:
            lowest = positions & -positions
            total += weights[lowest.bit_length() - 1]
            positions ^= lowest
        return total

    def _entering(self, weight: float, positions: int, earlier: float, before_window: float = math.inf) -> Entry:
        """A new entry: this basket plus its sales at look-back ``positions``.

        ``earlier`` caps all its sales before this basket, ``before_window`` those before the look-back.
        """
        seen = self._seen(positions) if positions else 0
        return [weight + seen, max(0.0, min(earlier - seen, before_window))]

    def _count_single(self, sku: str, weight: float) -> None:
        entry = self._singles.get(sku)
        if entry is None:
            self._singles[sku] = self._entering(weight, self._window_bits.get(sku, 0), self._floor)
        else:
            entry[0] += weight

    def _owns(self, sku: str) -> bool:
        return self.partitions == 1 or owner_partition(sku, self.partitions) == self.partition

    def _count_pairs(self, items: list[str], basket: set[str], weight: float) -> None:
        """Count every owned pair; gather each smallest SKU's open partners for the triples."""
        floor, bits = self._floor, self._window_bits
        gate = self._triple_floor + weight
        with_triples = self.max_size == 3
        for i, a in enumerate(items[:-1]):
            if not self._owns(a):
                continue
            row = self._pairs.setdefault(a, {})
            bits_a = bits.get(a, 0)
            partners: list[Partner] = []
            for b in items[i + 1 :]:
                entry = row.get(b)
                if entry is None:
                    shared = bits_a & bits.get(b, 0) if bits_a else 0
                    row[b] = self._entering(weight, shared, floor) if shared else [weight, floor]
                    continue
                entry[0] += weight
                upper = entry[0] + entry[1]
                if with_triples and upper > gate:
                    partners.append((b, upper))
            if len(partners) > 1:
                self._count_triples(a, partners, basket, weight)

    def _count_triples(self, a: str, partners: list[Partner], basket: set[str], weight: float) -> None:
        """Count the triples ``{a, b, c}`` of ``a``'s open partners (with their pair upper counts)."""
        by_b = self._triples.setdefault(a, {})
        if self.triple_budget is not None:
            budget = max(1, self.triple_budget // len(basket))
            if len(partners) * (len(partners) - 1) // 2 > budget:
                partners = self._cut(a, partners, basket, weight, budget)
        bound, bits = self._triple_bound(a), self._window_bits
        bits_a = bits.get(a, 0)
        # Per partner b: the look-back positions of {a, b} and the most {a, b} sold before them.
        known = []
        for b, upper in partners:
            shared = bits_a & bits.get(b, 0)
            known.append((b, shared, upper - weight - (self._seen(shared) if shared else 0)))
        for j, (b, shared_b, before_b) in enumerate(known[:-1]):
            row = by_b.setdefault(b, {})
            for c, shared_c, before_c in known[j + 1 :]:
                entry = row.get(c)
                if entry is None:
                    row[c] = self._entering(weight, shared_b & shared_c, bound, min(before_b, before_c))
                else:
                    entry[0] += weight

    def _cut(
        self, a: str, partners: list[Partner], basket: set[str], weight: float, budget: int
    ) -> list[Partner]:
        """Keep the partners with the highest pair counts within ``budget``; count tracked triples of the rest."""
        keep = int((1 + math.isqrt(1 + 8 * budget)) // 2)
        ranked = sorted(partners, key=lambda p: (-p[1], p[0]))
        kept = {b for b, _ in ranked[:keep]}
        self._cuts += 1
        self._left_out[a] = max(self._left_out.get(a, 0), ranked[keep][1])
        for b, row in self._triples[a].items():
            if b in basket:
                for c, entry in row.items():
                    if c in basket and not (b in kept and c in kept):
                        entry[0] += weight
        return [p for p in partners if p[0] in kept]

    def _remember(self, basket: list[str], weight: float) -> None:
        """Index the basket in the look-back window, dropping the oldest ``lookback`` baskets when it is full."""
        if not self.lookback:
            return
        if len(self._window) == 2 * self.lookback:
            drop = self.lookback
            self._window_bits = {sku: bits >> drop for sku, bits in self._window_bits.items() if bits >> drop}
            del self._window[:drop], self._window_weights[:drop]
        self._index(basket, len(self._window))
        self._window.append(basket)
        self._window_weights.append(weight)

    def _index(self, basket: list[str], position: int) -> None:
        bit, bits = 1 << position, self._window_bits
        for sku in basket:
            bits[sku] = bits.get(sku, 0) | bit

    def _triple_bound(self, a: str) -> float:
        """Most a triple whose smallest SKU is ``a`` can be undercounted, in counter units."""
        return max(self.triple_epsilon * self._weight + self._newest_weight(), self._left_out.get(a, 0))

    @property
    def latest_ts(self) -> float | None:
        """The latest event time counted (``None`` before the first basket)."""
        return self._latest

    def _newest_weight(self) -> float:
        """Weight of a basket at the latest event time (1 without decay)."""
        if self.half_life is None or self._latest is None:
            return 1
        return self._decay_weight(self._latest)

    def _prune(self) -> None:
        """Close a bucket: raise the floor, drop the singles and pairs that cannot be frequent, then the triples."""
        self._floor = floor = self.epsilon * self._weight
        self._singles = {sku: e for sku, e in self._singles.items() if _upper(e) > floor}
        pairs: dict[str, dict[str, Entry]] = {}
        for a, row in self._pairs.items():
            kept = {b: e for b, e in row.items() if _upper(e) > floor}
            if kept:
                pairs[a] = kept
        self._pairs = pairs
        self._prune_triples()

    def _prune_triples(self) -> None:
        """Close a triple bucket: keep the triples above ``ε₃N`` whose two pairs of their smallest SKU are open."""
        self._triple_floor = floor = self.triple_epsilon * self._weight
        triples: dict[str, dict[str, dict[str, Entry]]] = {}
        for a, by_b in self._triples.items():
            open_pairs = {b for b, e in self._pairs.get(a, {}).items() if _upper(e) > floor}
            kept_a = {}
            for b, row in by_b.items():
                if b in open_pairs:
                    kept = {c: e for c, e in row.items() if c in open_pairs and _upper(e) > floor}
                    if kept:
                        kept_a[b] = kept
            if kept_a:
                triples[a] = kept_a
        self._triples = triples

    # Queries.

    @property
    def n_baskets(self) -> int:
        """Baskets counted so far."""
        return self._n

    def _entry(self, items: list[str]) -> Entry | None:
        if len(items) == 1:
            return self._singles.get(items[0])
        if len(items) == 2:
            return self._pairs.get(items[0], {}).get(items[1])
        return self._triples.get(items[0], {}).get(items[1], {}).get(items[2])

    def error_bound(self, itemset: Iterable[str]) -> float:
        """Largest possible underestimate of ``itemset``'s support: its own ``delta``, or its level's bound if untracked."""
        items = sorted(itemset)
        if not items or self._weight == 0:
            return 0.0
        entry = self._entry(items)
        if entry is not None:
            return entry[1] / self._weight
        return (self._floor if len(items) < 3 else self._triple_bound(items[0])) / self._weight

    def _counts(self, min_support: float) -> dict[Itemset, float]:
        """Tracked itemsets whose upper count reaches ``min_support``, with their counts (counter units)."""
        if self._weight == 0:
            return {}
        wanted = min_support * self._weight
        found: dict[Itemset, float] = {(sku,): e[0] for sku, e in self._singles.items() if _upper(e) >= wanted}
        for a, row in self._pairs.items():
            found.update(((a, b), e[0]) for b, e in row.items() if _upper(e) >= wanted)
        for a, by_b in self._triples.items():
            for b, row in by_b.items():
                found.update(((a, b, c), e[0]) for c, e in row.items() if _upper(e) >= wanted)
        return found

    def itemsets(self, min_support: float | None = None) -> dict[Itemset, float]:
        """Every itemset whose true support may reach ``min_support``, with its estimated support.

        Keys are sorted tuples of SKUs; an itemset is reported when its upper
        count (``count + delta``) reaches the threshold, so recall is 1.0. A
        partition reports all singles and only the larger itemsets it owns.
        """
        support = self.min_support if min_support is None else min_support
        return {itemset: count / self._weight for itemset, count in self._counts(support).items()}

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
            if len(itemset) < 2:
                continue
            for consequent in itemset:
                antecedent = tuple(sku for sku in itemset if sku != consequent)
                if len(antecedent) > max_antecedent or antecedent not in supports or (consequent,) not in supports:
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
        back to its best-sellers (scored by support). Costs one scan of the tables.
        """
        cart, _ = basket_of(x)
        consequents = self._consequents(None)
        picks = CartRecommender(self.top_n).recommend(
            cart, {sku: consequents.get(sku, []) for sku in cart}, global_best=self.best_sellers(self.top_n + len(cart))
        )
        return [(p.sku, p.score) for p in picks]

    def memory_entries(self) -> dict[str, int]:
        """Tracked entries per itemset size, and the baskets held for look-back."""
        return {
            "singles": len(self._singles),
            "pairs": sum(len(row) for row in self._pairs.values()),
            "triples": sum(len(row) for by_b in self._triples.values() for row in by_b.values()),
            "lookback_baskets": len(self._window),
        }

    def metrics(self) -> dict[str, float]:
        """Baskets counted, tracked entries per size, triple budget cuts and the level error bounds."""
        return {
            "baskets": self._n,
            **{f"entries_{size}": count for size, count in self.memory_entries().items()},
            "triples_restricted": self._cuts,
            "pair_error_bound": self._floor / self._weight if self._weight else 0.0,
            "triple_error_bound": (
                (self.triple_epsilon * self._weight + self._newest_weight()) / self._weight if self._weight else 0.0
            ),
        }

    # Checkpoints.

    def _params(self) -> dict[str, Any]:
        return {
            "epsilon": self.epsilon,
            "triple_epsilon": self.triple_epsilon,
            "max_size": self.max_size,
            "half_life": self.half_life,
            "min_support": self.min_support,
            "min_confidence": self.min_confidence,
            "min_lift": self.min_lift,
            "top_n": self.top_n,
            "lookback": self.lookback,
            "triple_budget": self.triple_budget,
            "partition": self.partition,
            "partitions": self.partitions,
        }

    def state_dict(self) -> dict[str, Any]:
        """Plain-data checkpoint: parameters, clock, floor, every tracked entry and the look-back baskets."""
        return {
            "model": self.MODEL,
            "version": self.VERSION,
            "params": self._params(),
            "n": self._n,
            "weight": self._weight,
            "origin": self._origin,
            "latest": self._latest,
            "floor": self._floor,
            "triple_floor": self._triple_floor,
            "cuts": self._cuts,
            "left_out": dict(self._left_out),
            "singles": {sku: list(e) for sku, e in self._singles.items()},
            "pairs": {a: {b: list(e) for b, e in row.items()} for a, row in self._pairs.items()},
            "triples": {
                a: {b: {c: list(e) for c, e in row.items()} for b, row in by_b.items()}
                for a, by_b in self._triples.items()
            },
            "window": [list(basket) for basket in self._window],
            "window_weights": list(self._window_weights),
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
        counter._floor = state["floor"]
        counter._triple_floor = state["triple_floor"]
        counter._cuts = state["cuts"]
        counter._left_out = dict(state["left_out"])
        counter._singles = {sku: list(e) for sku, e in state["singles"].items()}
        counter._pairs = {a: {b: list(e) for b, e in row.items()} for a, row in state["pairs"].items()}
        counter._triples = {
            a: {b: {c: list(e) for c, e in row.items()} for b, row in by_b.items()}
            for a, by_b in state["triples"].items()
        }
        counter._window = [list(basket) for basket in state["window"]]
        counter._window_weights = list(state["window_weights"])
        for position, basket in enumerate(counter._window):
            counter._index(basket, position)
        return counter
