"""Score the streaming :class:`~models.baskets.BasketCounter` against exact FP-Growth (mlxtend).

Run ``python -m streams.tools.evaluation.baskets [datasets folder]`` (default
``../shared/datasets``): for Groceries, the Online Retail month and the shop
simulator it feeds the same baskets, in order, to the counter and to mlxtend's
``fpgrowth`` + ``association_rules`` and reports recall of the frequent
itemsets, the worst support error against each itemset's own bound and the
counter's stated level bound, rule confidence and lift errors, memory and
speed; then a scaling run (memory as the baskets grow 10x, by resampling with
a fixed seed) and, on the simulator, whether each planted bundle is the top
rule of its head SKU. Every report is printed as a JSON line, then one
Markdown table of all runs.

The reference and comparison functions are reused by the tests on generated
baskets.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from mlxtend.frequent_patterns import association_rules, fpgrowth
from mlxtend.preprocessing import TransactionEncoder

from models.baskets import BasketCounter
from streams.tools.simulation import ShopSimulator, SimulatorConfig
from streams.tools.sources.groceries import read_basket_lines
from streams.tools.sources.retail_csv import read_retail_orders

Basket = Collection[str]
Itemset = tuple[str, ...]


def exact_itemsets(baskets: Sequence[Basket], min_support: float, max_size: int = 3) -> dict[Itemset, float]:
    """Every itemset of at most ``max_size`` SKUs with support ≥ ``min_support`` (mlxtend FP-Growth)."""
    frequent = _fpgrowth(baskets, min_support, max_size)
    return {tuple(sorted(items)): float(s) for items, s in zip(frequent["itemsets"], frequent["support"])}


def exact_rules(
    baskets: Sequence[Basket], min_support: float, min_confidence: float, max_size: int = 3
) -> dict[tuple[Itemset, str], tuple[float, float]]:
    """Rules ``X → y`` (one consequent) of the frequent itemsets: ``(X, y) -> (confidence, lift)``."""
    frequent = _fpgrowth(baskets, min_support, max_size)
    if frequent.empty:
        return {}
    table = association_rules(frequent, num_itemsets=len(baskets), metric="confidence", min_threshold=min_confidence)
    return {
        (tuple(sorted(x)), next(iter(y))): (float(c), float(lift))
        for x, y, c, lift in zip(table["antecedents"], table["consequents"], table["confidence"], table["lift"])
        if len(y) == 1
    }


def _fpgrowth(baskets: Sequence[Basket], min_support: float, max_size: int) -> pd.DataFrame:
    encoder = TransactionEncoder()
    rows = [sorted(basket) for basket in baskets]
    onehot = pd.DataFrame(encoder.fit(rows).transform(rows), columns=encoder.columns_)
    return fpgrowth(onehot, min_support=min_support, use_colnames=True, max_len=max_size)


class BasketIndex:
    """Exact supports of any itemset by intersecting per-SKU bitsets of basket numbers."""

    def __init__(self, baskets: Sequence[Basket]) -> None:
        bits: dict[str, int] = {}
        for n, basket in enumerate(baskets):
            for sku in set(basket):
                bits[sku] = bits.get(sku, 0) | (1 << n)
        self._bits = bits
        self.n = len(baskets)

    def support(self, itemset: Iterable[str]) -> float:
        """Share of baskets holding every SKU of ``itemset``."""
        common = -1
        for sku in itemset:
            common &= self._bits.get(sku, 0)
        return common.bit_count() / self.n


@dataclass
class Comparison:
    """How the counter's itemsets and rules compare with the exact ones on the same baskets."""

    baskets: int
    min_support: float
    exact_itemsets: dict[int, int]
    recall: dict[int, float]
    reported: dict[int, int]
    #: Largest true minus estimated support among reported and frequent itemsets, per size.
    max_support_error: dict[int, float]
    #: Largest error bound of those itemsets (:meth:`BasketCounter.error_bound`, support units), per size.
    max_error_bound: dict[int, float]
    #: The counter's worst-case bound per size (what a reported itemset may miss): ε·N_before/N for 1–2, ε₃·N_before/N.
    stated_bound: dict[int, float]
    bound_violations: int
    overestimates: int
    exact_rules: int
    rule_recall: float
    #: Largest absolute confidence error and relative lift error, per antecedent size.
    max_confidence_error: dict[int, float]
    max_lift_error: dict[int, float]


def compare(counter: BasketCounter, baskets: Sequence[Basket], min_support: float, min_confidence: float) -> Comparison:
    """Compare a counter that has learned ``baskets`` (in order) with FP-Growth on the same baskets."""
    index = BasketIndex(baskets)
    exact = exact_itemsets(baskets, min_support, counter.max_size)
    reported = counter.itemsets(min_support)
    sizes = range(1, counter.max_size + 1)
    errors = {size: 0.0 for size in sizes}
    bounds = {size: 0.0 for size in sizes}
    violations = overestimates = 0
    for itemset in set(reported) | set(exact):
        true = exact[itemset] if itemset in exact else index.support(itemset)
        estimate = reported.get(itemset, 0.0)
        bound = counter.error_bound(itemset)
        errors[len(itemset)] = max(errors[len(itemset)], true - estimate)
        bounds[len(itemset)] = max(bounds[len(itemset)], bound)
        violations += true - estimate > bound + 1e-12
        overestimates += estimate > true + 1e-12
    exact_rule_set = exact_rules(baskets, min_support, min_confidence, counter.max_size)
    ours = {
        (r.antecedent, r.consequent): r
        for r in counter.rules(min_support=min_support, min_confidence=0.0, min_lift=0.0,
                               max_antecedent=counter.max_size - 1)
    }
    matched = [(ours[key], value) for key, value in exact_rule_set.items() if key in ours]
    return Comparison(
        baskets=len(baskets),
        min_support=min_support,
        exact_itemsets={size: sum(len(i) == size for i in exact) for size in sizes},
        recall={size: _share([i in reported for i in exact if len(i) == size]) for size in sizes},
        reported={size: sum(len(i) == size for i in reported) for size in sizes},
        max_support_error=errors,
        max_error_bound=bounds,
        stated_bound={
            size: counter.metrics()["pair_error_bound" if size < 3 else "itemset_error_bound"] for size in sizes
        },
        bound_violations=violations,
        overestimates=overestimates,
        exact_rules=len(exact_rule_set),
        rule_recall=len(matched) / len(exact_rule_set) if exact_rule_set else 1.0,
        max_confidence_error={
            size: max((abs(r.confidence - c) for r, (c, _) in matched if len(r.antecedent) == size), default=0.0)
            for size in range(1, counter.max_size)
        },
        max_lift_error={
            size: max((abs(r.lift - lift) / lift for r, (_, lift) in matched if len(r.antecedent) == size), default=0.0)
            for size in range(1, counter.max_size)
        },
    )


def _share(flags: list[bool]) -> float:
    return sum(flags) / len(flags) if flags else 1.0


def learn(counter: BasketCounter, baskets: Iterable[Basket]) -> float:
    """Feed ``baskets`` to ``counter``; the seconds it took."""
    start = time.perf_counter()
    for basket in baskets:
        counter.learn_one(basket)
    return time.perf_counter() - start


def deep_size(obj: Any) -> int:
    """Bytes held by nested dicts / lists / tuples of strings and numbers (``sys.getsizeof`` summed)."""
    seen: set[int] = set()
    stack = [obj]
    total = 0
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        total += sys.getsizeof(item)
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return total


def counter_bytes(counter: BasketCounter) -> int:
    """Bytes of the counter's tables, measured on its checkpoint (the same nested dicts and lists)."""
    return deep_size(counter.state_dict())


def memory_bound(baskets: Sequence[Basket], epsilon: float) -> dict[str, float]:
    """Manku & Motwani's entry bound ``w·m·(1 + H_B)`` for singles and pairs over ``baskets``.

    ``m`` is the largest per-bucket mean of singles (basket size) and pairs
    (``k(k-1)/2``) per basket, ``B`` the number of buckets.
    """
    width = math.ceil(round(1 / epsilon, 9))
    buckets = [baskets[i : i + width] for i in range(0, len(baskets), width)]
    harmonic = sum(1 / b for b in range(1, len(buckets) + 1))
    m_singles = max(sum(len(b) for b in bucket) / width for bucket in buckets)
    m_pairs = max(sum(len(b) * (len(b) - 1) / 2 for b in bucket) / width for bucket in buckets)
    return {"singles": width * m_singles * (1 + harmonic), "pairs": width * m_pairs * (1 + harmonic)}


def resample(baskets: Sequence[Basket], n: int, seed: int = 7) -> list[Basket]:
    """``n`` baskets drawn with replacement (fixed seed): the same distribution, any length."""
    rng = random.Random(seed)
    return [baskets[rng.randrange(len(baskets))] for _ in range(n)]


def measure(label: str, baskets: Sequence[Basket], make: Callable[[], BasketCounter],
            min_confidence: float) -> tuple[dict[str, Any], BasketCounter]:
    """Learn ``baskets`` with a fresh counter; its accuracy against FP-Growth, memory and speed (and the counter)."""
    counter = make()
    seconds = learn(counter, baskets)
    run = {
        "run": label,
        "baskets": len(baskets),
        "entries": counter.memory_entries(),
        "bound": {k: round(v) for k, v in memory_bound(baskets, counter.epsilon).items()},
        "bytes": counter_bytes(counter),
        "seconds": round(seconds, 2),
        "baskets_per_second": round(len(baskets) / seconds),
        "triples_restricted": counter.metrics()["triples_restricted"],
        "comparison": asdict(compare(counter, baskets, counter.min_support, min_confidence)),
    }
    return run, counter


def evaluate(
    name: str,
    baskets: Sequence[Basket],
    make: Callable[[], BasketCounter],
    min_confidence: float,
    growth: int = 10,
    resampled: int | None = None,
) -> tuple[dict[str, Any], BasketCounter]:
    """Full comparison on ``baskets``, then memory and accuracy on a resample and its ``growth``-fold (and the counter)."""
    run, counter = measure(name, baskets, make, min_confidence)
    report = {"dataset": name, "params": {k: v for k, v in counter.state_dict()["params"].items() if v is not None},
              **run, "scaling": []}
    base = resampled or len(baskets)
    for size in (base, growth * base):
        scaled, _ = measure(f"{name} resampled {size:,}", resample(baskets, size), make, min_confidence)
        report["scaling"].append(scaled)
    return report, counter


def evaluate_groceries(path: str | Path) -> dict[str, Any]:
    """Groceries (9,835 baskets, 169 items): s = 1%, ε = 0.1%, triples; resampled to 10k and 100k baskets."""
    baskets = [frozenset(b) for b in read_basket_lines(path)]

    def make() -> BasketCounter:
        return BasketCounter(epsilon=0.001, min_support=0.01)

    return evaluate("groceries", baskets, make, min_confidence=0.1, resampled=10_000)[0]


def evaluate_online_retail(folder: str | Path) -> dict[str, Any]:
    """Online Retail, December 2010 (1,636 replayed orders, up to 500 lines): s = 2%, ε = 0.2%, ε₃ = 1%.

    Wholesale invoices of several hundred lines hold millions of triples each; Apriori on the open pairs and the
    look-back keep them countable without a per-basket cap."""
    files = sorted(Path(folder).glob("*.csv"))
    baskets = [frozenset(line["sku"] for line in order["lines"]) for order in read_retail_orders(files)]

    def make() -> BasketCounter:
        return BasketCounter(epsilon=0.002, triple_epsilon=0.01, min_support=0.02)

    return evaluate("online-retail-2010-12", baskets, make, min_confidence=0.1)[0]


def evaluate_simulator(customers: int = 20_000, days: float = 30.0, seed: int = 7) -> dict[str, Any]:
    """Simulated shop orders: comparison, scaling, and whether planted bundles top their heads' rules."""
    simulator = ShopSimulator(SimulatorConfig(customers=customers, days=days, seed=seed))
    orders = [e.value for e in simulator.events() if e.topic == "orders" and isinstance(e.value, dict)]
    baskets = [frozenset(line["sku"] for line in order["lines"]) for order in orders]

    def make() -> BasketCounter:
        return BasketCounter(epsilon=0.0005, min_support=0.002, min_confidence=0.2)

    report, counter = evaluate("simulator", baskets, make, min_confidence=0.2, resampled=len(baskets) // 10)
    report["bundles"] = bundle_ranks(counter, simulator.ground_truth()["bundles"])
    return report


def bundle_ranks(counter: BasketCounter, bundles: list[list[str]]) -> list[dict[str, Any]]:
    """For each planted bundle ``[head, *companions]``: the head's top consequents and whether they are the bundle."""
    ranks = []
    for head, *companions in bundles:
        top = counter.top_consequents(head, len(companions))
        hit = {sku for sku, _ in top} == set(companions)
        ranks.append({"head": head, "companions": companions, "top": top, "hit": hit})
    return ranks


TABLE_HEADER = (
    "| run | baskets | recall 1/2/3 | max support error 1/2/3 | own bound 1/2/3 | stated bound ε / ε₃+1/N "
    "| violations | rule recall | max conf. error (1-SKU / 2-SKU antecedent) | entries singles/pairs/triples "
    "| MB | baskets/s |\n" + "|---" * 12 + "|"
)


def table_row(run: dict[str, Any]) -> str:
    """One Markdown row of a :func:`measure` result."""
    c = run["comparison"]

    def per_size(values: dict[Any, float], digits: int = 4) -> str:
        return " / ".join(f"{values[size]:.{digits}f}" for size in sorted(values, key=int))

    entries = run["entries"]
    return " | ".join([
        f"| {run['run']}", f"{run['baskets']:,}", per_size(c["recall"], 2), per_size(c["max_support_error"]),
        per_size(c["max_error_bound"]), f"{c['stated_bound'][2]:.4f} / {c['stated_bound'][3]:.4f}",
        str(c["bound_violations"]), f"{c['rule_recall']:.3f}", per_size(c["max_confidence_error"]),
        f"{entries['singles']:,} / {entries['pairs']:,} / {entries['triples']:,}", f"{run['bytes'] / 1e6:.1f}",
        f"{run['baskets_per_second']:,} |",
    ])


def main(argv: list[str] | None = None) -> None:
    """Print every evaluation as a JSON line, then a Markdown table of all runs."""
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0] if args else "../shared/datasets")
    rows = []
    for evaluation in (
        lambda: evaluate_groceries(root / "groceries-arules" / "groceries.csv"),
        lambda: evaluate_online_retail(root / "online-retail-2010-12"),
        evaluate_simulator,
    ):
        report = evaluation()
        print(json.dumps(report, default=str), flush=True)
        rows += [table_row(run) for run in (report, *report["scaling"])]
    print("\n".join([TABLE_HEADER, *rows]), flush=True)


if __name__ == "__main__":
    main()
