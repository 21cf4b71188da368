"""Frequent items, pairs and triples of an order stream, with a proven error bound in bounded memory."""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Mapping
from typing import Any, Self

from models.base import check_state_tag
from models.baskets.recommend import CartRecommender
from models.baskets.rules import AssociationRule

#: Decayed weights are rescaled by an exact power of two once the newest basket weighs 2**RESCALE_AT.
RESCALE_AT = 64

#: A tracked itemset: ``[count, delta]``; its true count lies in ``[count, count + delta]``.
Entry = list[float]
Itemset = tuple[str, ...]


def owner_partition(sku: str, partitions: int) -> int:
    """The counter partition that owns ``sku`` (CRC-32, stable across processes and restarts).

    >>> owner_partition("85123A", 1), 0 <= owner_partition("85123A", 3) < 3
    (0, True)
    """
    return zlib.crc32(sku.encode("utf-8")) % partitions


def basket_of(x: Mapping[str, Any] | Iterable[str]) -> tuple[set[str], float | None]:
    """The SKU set and event time of an order record (``lines[*].sku``, ``ts``) or of a plain SKU iterable."""
    if isinstance(x, Mapping):
        return {line["sku"] for line in x.get("lines", ())}, x.get("ts")
    if isinstance(x, str):
        raise TypeError("a basket is an order record or an iterable of SKUs, not a single string")
    return set(x), None


def _upper(entry: Entry) -> float:
    return entry[0] + entry[1]


class BasketCounter:
    """Streaming frequent itemsets (sizes 1 to 3) and association rules: Lossy Counting with Apriori pruning.

    A basket is the set of SKUs of one order (quantities do not matter). Every
    itemset size keeps a table of ``[count, delta]`` entries; the table is
    pruned every ``w = ⌈1/epsilon⌉`` baskets (Manku & Motwani's Lossy
    Counting, 2002). Let ``N`` be the number of baskets so far.

    Guarantee (undecayed), for every itemset ``I`` with true count ``c(I)``:

    * singles and pairs (every pair of every basket is counted): a tracked
      entry satisfies ``count ≤ c(I) ≤ count + delta`` with
      ``delta ≤ epsilon·N``; an untracked itemset has ``c(I) ≤ epsilon·N``.
    * triples: a 100-line invoice holds 161,700 triples, so a new triple
      ``{a < b < c}`` is only admitted (Apriori pruning) when its two pairs
      that contain its smallest SKU, ``{a,b}`` and ``{a,c}``, have upper
      counts (``count + delta``, with this basket) above the triple floor
      ``triple_epsilon·N`` (the *open* partners ``b`` of ``a``); once
      tracked, every later occurrence is counted. A basket of ``k`` SKUs may
      admit at most ``triple_budget`` candidates: each smallest SKU ``a``
      with more than
      ``triple_budget / k`` candidates keeps only its open partners with the
      highest pair counts, and ``Θ(a)`` records the largest pair count it
      ever left out. Then
      ``count ≤ c(I) ≤ count + max(triple_epsilon·N, Θ(a))``, and an
      untracked triple has ``c(I) ≤`` the same bound (a triple missed in a
      basket has a pair whose upper count, hence its own count, is at most
      that).

    So :meth:`itemsets` with ``min_support = s`` lowers each threshold by its
    level's bound (:meth:`error_bound`) and reports every itemset whose true
    support is ``≥ s`` (recall 1.0); every reported support underestimates the
    true support by at most that bound. ``Θ(a)`` stays 0 unless a basket is
    big enough to hit the budget (``metrics()["triples_restricted"]`` counts
    those cuts).

    Memory (Manku & Motwani's lemma): after ``B = N / w`` buckets, a level
    holds at most ``w·m·(1 + H_B)`` entries (``H_B ≈ ln B + 0.58``), where
    ``m`` is the largest number of that level's itemsets per basket averaged
    over a bucket (the mean basket size for singles, the mean ``k(k-1)/2`` for
    pairs), so memory grows with ``log N``, not ``N``. Triples obey the same
    bound with ``m`` the admitted candidates per basket (at most
    ``triple_budget``) while ``Θ(a) ≤ triple_epsilon·N``; a larger ``Θ(a)``
    lets new triples of ``a`` live a little longer. Work per basket: ``k``
    singles, ``k(k-1)/2`` pairs and at most ``triple_budget`` triple
    candidates (plus a look at the tracked triples of a cut SKU).

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
    (0.25, 0.05)
    >>> [(r.antecedent, r.consequent, r.confidence, round(r.lift, 2)) for r in counter.rules()][:3]
    [(('jam',), 'scones', 1.0, 1.33), (('jam', 'tea'), 'scones', 1.0, 1.33), (('milk',), 'tea', 1.0, 1.33)]

    Suggestions for a cart: rules first, then best-sellers (scored by support):

    >>> counter.predict_one(["jam"])
    [('scones', 1.0), ('tea', 0.75), ('milk', 0.25)]
    """

    MODEL = "BasketCounter"
    VERSION = 1

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
        triple_budget: int = 20_000,
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
        if top_n < 1 or triple_budget < 1:
            raise ValueError("top_n and triple_budget must be at least 1")
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
        #: Baskets per bucket; every table is pruned when a bucket closes.
        self.bucket_width = math.ceil(round(1 / epsilon, 9))
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
        for sku in items:
            self._add(self._singles, sku, weight, self._floor)
        if self.max_size >= 2 and len(items) > 1:
            self._count_pairs(sorted(items), items, weight)
        if self._n % self.bucket_width == 0:
            self._prune()

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
        for entry in self._entries():
            entry[0], entry[1] = scale(entry[0]), scale(entry[1])

    def _entries(self) -> Iterable[Entry]:
        yield from self._singles.values()
        for row in self._pairs.values():
            yield from row.values()
        for by_b in self._triples.values():
            for row in by_b.values():
                yield from row.values()

    @staticmethod
    def _add(table: dict[str, Entry], key: str, weight: float, floor: float) -> None:
        entry = table.get(key)
        if entry is None:
            table[key] = [weight, floor]
        else:
            entry[0] += weight

    def _owns(self, sku: str) -> bool:
        return self.partitions == 1 or owner_partition(sku, self.partitions) == self.partition

    def _count_pairs(self, items: list[str], basket: set[str], weight: float) -> None:
        """Count every owned pair; gather each smallest SKU's open partners for the triples."""
        floor, triple_floor = self._floor, self._triple_floor
        per_sku = max(1, self.triple_budget // len(items))
        for i, a in enumerate(items[:-1]):
            if not self._owns(a):
                continue
            row = self._pairs.setdefault(a, {})
            partners: list[tuple[str, float]] = []
            for b in items[i + 1 :]:
                entry = row.get(b)
                if entry is None:
                    entry = row[b] = [weight, floor]
                else:
                    entry[0] += weight
                upper = entry[0] + entry[1]
                if upper > triple_floor:
                    partners.append((b, upper))
            if self.max_size == 3 and len(partners) > 1:
                self._count_triples(a, partners, basket, weight, per_sku)

    def _count_triples(
        self, a: str, partners: list[tuple[str, float]], basket: set[str], weight: float, budget: int
    ) -> None:
        """Count the triples ``{a, b, c}`` of ``a``'s open partners (with their pair upper counts)."""
        by_b = self._triples.setdefault(a, {})
        if len(partners) * (len(partners) - 1) // 2 > budget:
            partners = self._cut(a, partners, basket, weight, budget)
        cap = self._triple_bound(a)
        for j, (b, upper_b) in enumerate(partners[:-1]):
            row = by_b.setdefault(b, {})
            for c, upper_c in partners[j + 1 :]:
                entry = row.get(c)
                if entry is None:
                    row[c] = [weight, min(upper_b - weight, upper_c - weight, cap)]
                else:
                    entry[0] += weight

    def _cut(
        self, a: str, partners: list[tuple[str, float]], basket: set[str], weight: float, budget: int
    ) -> list[tuple[str, float]]:
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

    def _triple_bound(self, a: str) -> float:
        """Most a triple whose smallest SKU is ``a`` can be undercounted, in counter units."""
        return max(self._triple_floor, self._left_out.get(a, 0))

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
        """Close a bucket: raise the floors, drop what cannot be frequent, keep triples' pairs tracked."""
        self._floor = self.epsilon * self._weight
        self._triple_floor = self.triple_epsilon * self._weight
        floor, triple_floor = self._floor, self._triple_floor
        self._singles = {sku: e for sku, e in self._singles.items() if _upper(e) > floor}
        pairs: dict[str, dict[str, Entry]] = {}
        for a, row in self._pairs.items():
            kept = {b: e for b, e in row.items() if _upper(e) > floor}
            if kept:
                pairs[a] = kept
        self._pairs = pairs
        triples: dict[str, dict[str, dict[str, Entry]]] = {}
        for a, by_b in self._triples.items():
            open_pairs = {b for b, e in pairs.get(a, {}).items() if _upper(e) > triple_floor}
            kept_a = {}
            for b, row in by_b.items():
                if b in open_pairs:
                    kept = {c: e for c, e in row.items() if c in open_pairs and _upper(e) > triple_floor}
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

    def error_bound(self, itemset: Iterable[str]) -> float:
        """Largest possible underestimate of ``itemset``'s support (and support of an untracked itemset)."""
        items = sorted(itemset)
        if not items or self._weight == 0:
            return 0.0
        if len(items) < 3:
            bound = self._floor
        else:
            bound = self._triple_bound(items[0])
        return bound / self._weight

    def _counts(self, min_support: float) -> dict[Itemset, float]:
        """Itemsets whose support may reach ``min_support``, with their counts (counter units)."""
        if self._weight == 0:
            return {}
        wanted = min_support * self._weight
        least = wanted - self._floor
        found: dict[Itemset, float] = {(sku,): e[0] for sku, e in self._singles.items() if e[0] >= least}
        for a, row in self._pairs.items():
            found.update(((a, b), e[0]) for b, e in row.items() if e[0] >= least)
        for a, by_b in self._triples.items():
            least_a = wanted - self._triple_bound(a)
            for b, row in by_b.items():
                found.update(((a, b, c), e[0]) for c, e in row.items() if e[0] >= least_a)
        return found

    def itemsets(self, min_support: float | None = None) -> dict[Itemset, float]:
        """Every itemset whose true support may reach ``min_support``, with its estimated support.

        Keys are sorted tuples of SKUs. Recall is 1.0: the threshold is lowered
        by each itemset's :meth:`error_bound`. A partition reports all singles
        and only the larger itemsets it owns.
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
        """Tracked entries per itemset size."""
        return {
            "singles": len(self._singles),
            "pairs": sum(len(row) for row in self._pairs.values()),
            "triples": sum(len(row) for by_b in self._triples.values() for row in by_b.values()),
        }

    def metrics(self) -> dict[str, float]:
        """Baskets counted, tracked entries per size, triple budget cuts and the pair error bound."""
        return {
            "baskets": self._n,
            **{f"entries_{size}": count for size, count in self.memory_entries().items()},
            "triples_restricted": self._cuts,
            "pair_error_bound": self._floor / self._weight if self._weight else 0.0,
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
            "triple_budget": self.triple_budget,
            "partition": self.partition,
            "partitions": self.partitions,
        }

    def state_dict(self) -> dict[str, Any]:
        """Plain-data checkpoint: parameters, clock, floors and every tracked entry."""
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
        return counter

    def clone(self) -> Self:
        """A fresh, unlearned counter with the same parameters."""
        return type(self)(**self._params())
