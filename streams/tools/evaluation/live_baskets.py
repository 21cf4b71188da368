"""A real shop's invoices through the live worker: how fast the basket stage counts, its memory, and the rules
it serves against exact FP-Growth.

Starts its own Tansu and redis-server (:class:`~streams.tools.faults.Deployment`, 4 partitions, default basket
settings but ``--min-support``), one ``kairos worker``, and sends every order of an Online Retail-layout folder
(:func:`~streams.tools.sources.retail_csv.read_retail_orders`) as fast as the producer goes. Reported:

* ``counting_seconds``: from the first send to the last basket counted by the slowest basket partition (each
  partition stamps the wall clock of its last count, ``counted_at`` in ``kairos:metrics:baskets-partitions``),
  and ``baskets_per_second`` over it: every order reaches every basket partition, so this is the live path's
  rate (ingest, customers stage, basket stage), not the counter's alone;
* ``all_rules_served_seconds``: from the first send until every rule exact FP-Growth finds (below) has its
  hash in Redis (what a shopper's recommendation can read; ``None`` if not within ``--timeout``);
* the worker's peak RSS (``VmHWM``) and RSS at the end;
* the served ``reco:rule`` hashes against mlxtend FP-Growth + ``association_rules`` on the same baskets, as
  the worker serves them (antecedents of one or two SKUs, ``KAIROS_BASKET_MIN_CONFIDENCE`` and
  ``KAIROS_BASKET_MIN_LIFT``): rules served, exact rules, exact rules not served, served rules not exact
  (a threshold met within rounding), largest confidence and support error.

The send is one burst, started once the worker's ingest alignment holds nothing back (:func:`wait_aligned`):
at the burst's end the alignment holds each input partition that went quiet for
``KAIROS_INGEST_ALIGN_IDLE_SECONDS`` (1 s) before it releases what the others sent after it, so about a
second of the counting time is that hold (``--align-idle-seconds 0`` measures without it).

Run::

    python -m streams.tools.evaluation.live_baskets --data ../shared/datasets/online-retail-2010-12
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from streams.settings import KairosSettings
from streams.tools.evaluation.baskets import exact_itemsets, exact_rules
from streams.tools.faults import Deployment, process_rss
from streams.tools.peers.measure import peak_rss_bytes
from streams.tools.sources.retail_csv import read_retail_orders

#: The largest antecedent of a served rule (``BasketCounter.rules``' default, as the worker calls it).
MAX_ANTECEDENT = 2


def partition_figures(deployment: Deployment) -> dict[int, dict[str, float]]:
    """``kairos:metrics:baskets-partitions`` by partition."""
    stored = deployment.client().hgetall(deployment.keys.metrics("baskets-partitions"))
    figures: dict[int, dict[str, float]] = {}
    for name, value in stored.items():
        part, field = name.split(".", 1)
        figures.setdefault(int(part[1:]), {})[field] = float(value)
    return figures


def served_rules(deployment: Deployment) -> dict[tuple[tuple[str, ...], str], tuple[float, float]]:
    """Every ``reco:rule`` hash: ``(antecedent, consequent) -> (confidence, support)``."""
    client = deployment.client()
    rules = {}
    keys = list(client.scan_iter(match=deployment.keys.key("reco", "rule", "*"), count=5000))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.hmget(key, "antecedent", "consequent", "confidence", "support")
    for antecedent, consequent, confidence, support in pipe.execute():
        if consequent is not None:
            rules[(tuple(sorted(json.loads(antecedent))), consequent)] = (float(confidence), float(support))
    return rules


def wait_aligned(deployment: Deployment, timeout: float) -> None:
    """Wait until the worker's ingest holds its input partitions and its alignment holds nothing back
    (``ingest_partitions`` set and ``align_holding`` empty in its metrics).

    Right after its assignment every input partition holds the others back for
    ``KAIROS_INGEST_ALIGN_IDLE_SECONDS`` (it may still send: it was heard from at the assignment). A burst sent
    the moment the worker is ready waits out that second (measured: the month's orders all fetched 0.19 s after
    the first send, released 0.91 s after it); a shop's worker runs long before its orders come.
    """
    client, deadline = deployment.client(), time.monotonic() + timeout
    pattern = deployment.keys.metrics("worker:*")
    while time.monotonic() < deadline:
        workers = [client.hgetall(key) for key in client.scan_iter(match=pattern)]
        if workers and all(fields.get("ingest_partitions") and "align_holding" in fields and not fields["align_holding"]
                           for fields in workers):
            return
        time.sleep(0.1)
    raise TimeoutError(f"the ingest alignment still held partitions back after {timeout:.0f} s")


def send_orders(deployment: Deployment, orders: list[dict[str, Any]]) -> float:
    """Send ``orders`` to the orders topic as fast as the producer goes; return the wall clock of the first send.

    The orders are encoded (JSON) before the clock starts: encoding is the shop's work, not Kairos's (about
    0.05 s for the month's 1,636 orders, 4.4 MB, on the 2-core machine).
    """
    producer = KafkaProducer(bootstrap_servers=deployment.settings.kafka_bootstrap, linger_ms=5, acks=1,
                             batch_size=1 << 20, max_request_size=4 << 20)
    topic = deployment.settings.topics.orders
    encoded = [(json.dumps(order).encode(), order["customer_id"].encode()) for order in orders]
    started = time.time()
    try:
        for value, key in encoded:
            producer.send(topic, value, key=key)
        producer.flush()
    finally:
        producer.close()
    return started


def exact_served_rules(baskets: list[list[str]], min_support: float) -> tuple[dict, dict]:
    """The rules the worker serves, exactly (mlxtend), and the supports of their itemsets."""
    settings = KairosSettings()
    exact = {rule: figures for rule, figures in exact_rules(baskets, min_support, settings.basket_min_confidence,
                                                            MAX_ANTECEDENT + 1).items()
             if figures[1] >= settings.basket_min_lift}
    return exact, exact_itemsets(baskets, min_support, MAX_ANTECEDENT + 1)


def measure(data: Path, workdir: Path, min_support: float, timeout: float, **settings: Any) -> dict[str, Any]:
    orders = list(read_retail_orders(sorted(data.glob("*.csv"))))
    baskets = [sorted({line["sku"] for line in order["lines"]}) for order in orders]
    exact, supports = exact_served_rules(baskets, min_support)
    deployment = Deployment.start(workdir, appendonly=False, basket_min_support=min_support, **settings)
    try:
        worker = deployment.start_worker()
        deployment.wait_ready(120)
        wait_aligned(deployment, timeout=30.0)
        first_send = send_orders(deployment, orders)
        send_seconds = time.time() - first_send
        deadline = time.monotonic() + timeout
        while True:
            figures = partition_figures(deployment)
            if figures and len(figures) == deployment.settings.partitions and all(
                    part.get("baskets", 0) >= len(orders) for part in figures.values()):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"baskets counted per partition: {[p.get('baskets') for p in figures.values()]}"
                                   f" of {len(orders)} after {timeout:.0f} s")
            deployment.restart_exited()
            time.sleep(0.2)
        counted_at = max(part["counted_at"] for part in figures.values())
        # Served: every exact rule has its hash (a partition's rules need the pair supports the others published
        # in their previous round, so the full set takes two rounds after the last count).
        rules, first_complete = served_rules(deployment), None
        while time.monotonic() < deadline:
            if exact.keys() <= rules.keys():
                first_complete = time.time()
                break
            time.sleep(0.5)
            rules = served_rules(deployment)
        # The values compared are those of a round whose snapshots counted every basket (a round that began
        # while a partition was still counting serves the rules of fewer baskets, until the next round).
        def rules_baskets() -> float:
            return min((part.get("rules_baskets", 0) for part in partition_figures(deployment).values()), default=0)

        while time.monotonic() < deadline and rules_baskets() < len(orders):
            time.sleep(0.5)
        rules = served_rules(deployment)
        pid = worker.process.pid
        result = {
            "baskets": len(orders), "send_seconds": round(send_seconds, 2),
            "counting_seconds": round(counted_at - first_send, 2),
            "baskets_per_second": round(len(orders) / max(counted_at - first_send, 1e-9)),
            "all_rules_served_seconds": None if first_complete is None else round(first_complete - first_send, 1),
            "rules_served": len(rules),
            "worker_peak_rss_mib": round(peak_rss_bytes(pid) / 2**20),
            "worker_rss_mib": round(process_rss(pid) / 2**20),
            "worker_exits": deployment.exits,
        }
    finally:
        deployment.close()
    errors = [abs(confidence - exact[rule][0]) for rule, (confidence, _) in rules.items() if rule in exact]
    support_errors = [abs(support - supports[tuple(sorted(rule[0] + (rule[1],)))])
                      for rule, (_, support) in rules.items() if rule in exact]
    result |= {
        "exact_rules": len(exact), "exact_rules_not_served": len(exact.keys() - rules.keys()),
        "served_not_exact": len(rules.keys() - exact.keys()),
        "max_confidence_error": max(errors, default=0.0), "max_support_error": max(support_errors, default=0.0),
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/online-retail-2010-12"))
    parser.add_argument("--min-support", type=float, default=0.01)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--align-idle-seconds", type=float, default=None,
                        help="KAIROS_INGEST_ALIGN_IDLE_SECONDS for the worker (default: the setting's default)")
    args = parser.parse_args()
    settings = {} if args.align_idle_seconds is None else {"ingest_align_idle_seconds": args.align_idle_seconds}
    with tempfile.TemporaryDirectory(prefix="kairos-live-baskets-") as folder:
        print(json.dumps(measure(args.data, Path(folder), args.min_support, args.timeout, **settings)),
              flush=True)


if __name__ == "__main__":
    main()
