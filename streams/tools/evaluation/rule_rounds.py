"""What a basket publication round costs on a real shop's rules: rule hashes written and time per step.

Counts an Online Retail-layout folder into one basket partition (default settings but ``--min-support``,
all SKUs owned), then runs three publication rounds into a throwaway redis-server, as the worker's basket
timer does (:func:`streams.pipeline.stages.baskets.publish_rules`): the first, one with the same counts
2 s later, and one after ``--more`` further baskets. Each line says how many rules the counter gave, how many
hashes were written, and the time to mine them (the worker does that in a thread), to build the round's
commands (on the event loop) and to run them in Redis::

    python -m streams.tools.evaluation.rule_rounds --data ../shared/datasets/online-retail-2010-12
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from redis.asyncio import Redis

from streams.pipeline.stages.baskets import BasketState, publish_rules
from streams.pipeline.views import RedisViews, WriteBatch
from streams.settings import KairosSettings
from streams.tools.devstack import start_redis
from streams.tools.sources.retail_csv import read_retail_orders


async def publication_round(state: BasketState, views: RedisViews, port: int, now: float, ttl: int) -> str:
    """One round at wall-clock ``now``: what it wrote and what each step took."""
    client = Redis(port=port)
    started = time.perf_counter()
    rules = state.counter.rules()
    mined = time.perf_counter()
    batch = WriteBatch()
    written = publish_rules(batch, views, state, rules, state.counter.top_n, ttl, now=now)
    built = time.perf_counter()
    await batch.execute(client)
    done = time.perf_counter()
    await client.aclose()
    return (f"{len(rules):,} rules, {written:,} hashes written; mine {1000 * (mined - started):.0f} ms, "
            f"build {1000 * (built - mined):.0f} ms, Redis {1000 * (done - built):.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/online-retail-2010-12"))
    parser.add_argument("--min-support", type=float, default=0.01)
    parser.add_argument("--more", type=int, default=1, help="baskets counted between the 2nd and 3rd rounds")
    args = parser.parse_args()
    baskets = [[line["sku"] for line in order["lines"]]
               for order in read_retail_orders(sorted(args.data.glob("*.csv")))]
    settings = KairosSettings(partitions=1, basket_min_support=args.min_support)
    state = BasketState.new(settings, 0)
    for basket in baskets[:len(baskets) - args.more]:
        state.counter.learn_one(basket)
    with tempfile.TemporaryDirectory() as workdir:
        server = start_redis(Path(workdir))
        try:
            views = RedisViews(KairosSettings(redis_url=f"redis://127.0.0.1:{server.port}/0"))
            ttl, now = settings.basket_rule_ttl_seconds, time.time()
            print("first round:", asyncio.run(publication_round(state, views, server.port, now, ttl)))
            print("same counts, 2 s later:", asyncio.run(publication_round(state, views, server.port, now + 2, ttl)))
            for basket in baskets[len(baskets) - args.more:]:
                state.counter.learn_one(basket)
            print(f"{args.more} more basket(s), 4 s later:",
                  asyncio.run(publication_round(state, views, server.port, now + 4, ttl)))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
