"""The serving layer: the front door to the Redis views (``kairos serve``).

Start reading at :func:`streams.serving.api.create_app` (the routes and their
contract), which answers through :class:`streams.serving.queries.ServingQueries`
(every Redis read, keys from :class:`~streams.pipeline.keys.RedisKeys`).
Responses are the pydantic models of :mod:`streams.serving.schemas`, which the
Python clients of :mod:`streams.serving.client` parse back. The dashboard
(``dashboard/``, served at ``/``) is static HTML, CSS and JavaScript with
inline SVG charts, nothing fetched from elsewhere. :mod:`streams.serving.metrics`
is the Prometheus side; :mod:`streams.serving.bench` measures lookup latency
under load over a shop written by :mod:`streams.serving.sample` (the serving
contract's shapes, also used by the tests).
"""

from streams.serving.api import create_app, serve
from streams.serving.client import AsyncKairosClient, KairosClient, KairosError

__all__ = ["AsyncKairosClient", "KairosClient", "KairosError", "create_app", "serve"]
