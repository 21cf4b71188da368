"""``kairos health``: is a worker alive, and is nothing failing? (the worker's compose healthcheck)

Reads the live workers' metrics hashes (``kairos:metrics:worker:{host-pid}``):
each worker rewrites its own every ``KAIROS_METRICS_FLUSH_SECONDS`` with
``updated_at`` (epoch seconds), ``failing`` (JSON: step -> since, failures,
reason) and ``ready``/``not_ready`` (see ``streams/pipeline/health.py``: a
rebalance, a recovery or a stalled input), and the hash expires when the
worker dies.
"""

from __future__ import annotations

import json
import time


from streams.pipeline.keys import RedisKeys
from streams.pipeline.views import redis_client
from streams.settings import KairosSettings

#: A worker whose metrics are older than this counts as gone.
FRESH_SECONDS = 30.0


def worker_health(settings: KairosSettings, host: str | None = None, now: float | None = None) -> tuple[bool, str]:
    """Whether a worker (on ``host``, if given) updated its metrics within 30 s with nothing failing; one line why."""
    keys = RedisKeys(settings.prefix)
    pattern = keys.pattern("metrics", "worker")
    with redis_client(settings, asynchronous=False, decode_responses=True, socket_timeout=5,
                              socket_connect_timeout=5) as client:
        workers = {key.removeprefix(pattern[:-1]): client.hgetall(key) for key in client.scan_iter(pattern)}
    now = time.time() if now is None else now
    live = {worker: fields for worker, fields in sorted(workers.items())
            if (host is None or worker.startswith(f"{host}-"))
            and now - float(fields.get("updated_at") or 0) <= FRESH_SECONDS}
    where = f" on {host}" if host else ""
    if not live:
        return False, f"no worker{where} updated {pattern} in the last {FRESH_SECONDS:.0f} s"
    failing = [f"worker {worker}: {step} failing for {now - failure['since']:.0f} s ({failure['reason']})"
               for worker, fields in live.items()
               for step, failure in json.loads(fields.get("failing") or "{}").items()]
    if failing:
        return False, "; ".join(failing)
    not_ready = [f"worker {worker} not ready: {fields['not_ready']}" for worker, fields in live.items()
                 if fields.get("ready") == "0" and fields.get("not_ready")]
    if not_ready:
        return False, "; ".join(not_ready)
    return True, f"ok: {len(live)} worker(s){where} live, nothing failing"


def request_views_rebuild(settings: KairosSettings) -> int:
    """Delete every partition's views-published marker: each owner republishes its views at its next tick.

    Returns how many markers were deleted.
    """
    keys = RedisKeys(settings.prefix)
    with redis_client(settings, asynchronous=False, socket_timeout=5, socket_connect_timeout=5) as client:
        markers = list(client.scan_iter(keys.pattern("meta", "views-published")))
        return sum(client.delete(marker) for marker in markers)  # one key each: a cluster's are in several slots
