"""Prometheus metrics of the lookup API, plus the pipeline's figures mirrored from Redis.

``GET /metrics`` answers in the Prometheus text format with:

- ``kairos_api_requests_total{method,route,status}`` and
  ``kairos_api_request_seconds{method,route}`` (time to the response's first
  byte, so a live stream counts its set-up, not its life), one series per
  route template (``/api/v1/customers/{customer_id}``, not per customer);
  requests matching no route are counted under ``route="unmatched"``;
- the workers' figures as they last wrote them to ``kairos:metrics:*``:
  ``kairos_events_total{topic,outcome}``, ``kairos_ingest_lag{worker}``,
  ``kairos_worker_ready{worker}``, ``kairos_group_lag{worker,group}``,
  ``kairos_live_workers``, ``kairos_model_metric{component,metric}`` and
  ``kairos_redis_up``.

Each app has its own registry, so several apps in one process (tests) do not
share counters.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from streams.serving.schemas import PipelineMetrics

#: Latency buckets (seconds): fine-grained below 10 ms, where lookups live.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class PipelineMirror(Collector):
    """Exposes the last :class:`PipelineMetrics` read from Redis."""

    def __init__(self) -> None:
        self.snapshot: PipelineMetrics | None = None
        self.redis_up = False

    def collect(self) -> Iterator[Metric]:
        """Prometheus families for the current snapshot."""
        up = GaugeMetricFamily("kairos_redis_up", "Whether the API reached Redis at this scrape.")
        up.add_metric([], float(self.redis_up))
        yield up
        if self.snapshot is None or not self.redis_up:
            return
        events = CounterMetricFamily("kairos_events", "Input events by topic and outcome, over all workers.",
                                     labels=["topic", "outcome"])
        for topic, counts in self.snapshot.ingest.items():
            for outcome, value in counts.model_dump().items():
                events.add_metric([topic, outcome], value)
        yield events
        lag = GaugeMetricFamily("kairos_ingest_lag", "Events behind the input topics' ends, per live worker.",
                                labels=["worker"])
        for worker in self.snapshot.workers:
            lag.add_metric([worker.worker], worker.ingest_lag or 0.0)
        yield lag
        ready = GaugeMetricFamily("kairos_worker_ready", "1 when a live worker was ready at its last flush (see "
                                  "/ready), 0 when not.", labels=["worker"])
        behind = GaugeMetricFamily("kairos_group_lag", "Events behind the topics' ends per consumer group, as the "
                                   "broker answered a live worker's last probe.", labels=["worker", "group"])
        for worker in self.snapshot.workers:
            if "ready" in worker.figures:
                ready.add_metric([worker.worker], worker.figures["ready"])
            for name, value in worker.figures.items():
                if name.startswith("group_lag."):
                    behind.add_metric([worker.worker, name.removeprefix("group_lag.")], value)
        yield ready
        yield behind
        live = GaugeMetricFamily("kairos_live_workers", "Workers whose metrics hash has not expired.")
        live.add_metric([], len(self.snapshot.workers))
        yield live
        models = GaugeMetricFamily("kairos_model_metric", "Progressive model metrics as the workers report them.",
                                   labels=["component", "metric"])
        for component, figures in self.snapshot.models.items():
            for name, value in figures.items():
                models.add_metric([component, name], value)
        yield models


class ApiMetrics:
    """The API's registry: request counters and latency histograms, and the pipeline mirror."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("kairos_api_requests", "HTTP requests answered.", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("kairos_api_request_seconds", "Time to the first byte of the response.",
                                 ["method", "route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.pipeline = PipelineMirror()
        self.registry.register(self.pipeline)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self, snapshot: PipelineMetrics | None) -> bytes:
        """The text exposition, with the pipeline figures of ``snapshot`` (``None``: Redis is down)."""
        self.pipeline.snapshot = snapshot
        self.pipeline.redis_up = snapshot is not None
        return generate_latest(self.registry)


class RequestTimer:
    """ASGI middleware timing every HTTP request into :class:`ApiMetrics`."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; record route, status and time when the response starts."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                route = scope.get("route")
                template = getattr(route, "path", None) or "unmatched"
                self.metrics.observe(scope["method"], template, message["status"], time.perf_counter() - started)
            await send(message)

        await self.app(scope, receive, timed_send)
