"""Erasure: ``kairos forget CUSTOMER_ID`` or ``DELETE /api/v1/customers/{id}`` (a shop's legal erasure path).

A request is a field of the ``kairos:erasures`` hash (the customer id as
stored, i.e. its pseudonym under ``KAIROS_PSEUDONYMIZE_KEY``, -> the time it
was asked). Every ``KAIROS_METRICS_FLUSH_SECONDS`` each worker takes the
requests for the customers partitions it owns and erases, inside the write
fence and under the customers stage's views lock (no batch can write a view
built from the erased state):

- the customer's state: deleted from the ``customers`` table, so a changelog
  tombstone follows and no restart brings it back;
- its place in the segmenter (the segment sizes are republished);
- its ``customer`` hash and ``segment:customer`` key;
- its payments' ``risk:payment`` views and their alert markers, and its
  entries in the ``alerts`` stream (found by a scan of both);

then deletes the request, which is how the CLI knows it was applied. A
partition republished after Redis came back empty writes only the payment
views of customers it still holds, so an erased customer's do not return.

Not erased: what the shop produced into the input topics and what Kairos
produced into Kafka topics (``alerts``, ``segment-changes``, the risk view log):
they age out with their topics' retention, which the shop sets. Events of the
customer still waiting in the input topics (lag) are applied after the
erasure and start the customer anew: erase once the lag is 0. The risk
learners' pending payments (payment id, features, no customer id) mature or
are labelled as usual.
"""

from __future__ import annotations

import time
from typing import Any

from streams.pipeline.keys import RedisKeys
from streams.pipeline.packing import partition_for


async def request_erasure(redis: Any, keys: RedisKeys, stored_id: str) -> None:
    """Ask the workers to erase the customer stored as ``stored_id``."""
    await redis.hset(keys.erasures(), stored_id, f"{time.time():.3f}")


async def take_erasures(redis: Any, keys: RedisKeys, owned: set[int], partitions: int) -> list[str]:
    """The requested customers whose partition is in ``owned`` (requests stay until :func:`done`)."""
    requested = await redis.hkeys(keys.erasures())
    ids = [key.decode() if isinstance(key, bytes) else key for key in requested]
    return sorted(cid for cid in ids if partition_for(cid, partitions) in owned)


async def done(redis: Any, keys: RedisKeys, stored_ids: list[str]) -> None:
    """Mark the erasure of ``stored_ids`` as applied (the requests go)."""
    if stored_ids:
        await redis.hdel(keys.erasures(), *stored_ids)
