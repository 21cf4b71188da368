"""Kairos in the stream: from a click on a shop to a view in Redis. A reading guide.

Follow one click:

1. **Wire** — :mod:`streams.pipeline.events` (the pydantic models of the four
   input topics: clicks, orders, payments, labels) and
   :mod:`streams.pipeline.validation` (one raw value -> a record or a reason;
   time sanity; pseudonyms, :mod:`streams.pipeline.pseudonyms`).
2. **Ingest** — :mod:`streams.pipeline.ingest`: reads the input topics in
   batches, dead-letters the bad, releases the rest in event-time order
   (:mod:`streams.pipeline.alignment`) and packs them per customer partition
   (:mod:`streams.pipeline.packing`).
3. **State** — :mod:`streams.pipeline.app` wires the Faust app (start there:
   its docstring is the map of agents, tables and timers). The customers stage
   (:mod:`streams.pipeline.stages.customers`) folds each event into a
   :class:`~streams.pipeline.customers.CustomerState` in the ``customers``
   table, scores payments (:mod:`streams.pipeline.stages.risk`) and feeds the
   segmenter (:mod:`streams.pipeline.stages.segments`); orders go on to the
   sales (:mod:`streams.pipeline.stages.sales`) and basket
   (:mod:`streams.pipeline.stages.baskets`) stages.
4. **Models** — the River estimators in :mod:`models` (segmentation, baskets,
   risk, forecasting): no Kafka, no Redis, no asyncio.
5. **Views** — :mod:`streams.pipeline.views` writes every Redis view, with keys
   from :mod:`streams.pipeline.keys` (the one key schema); nothing is committed
   that was not applied (:mod:`streams.pipeline.transport`,
   :mod:`streams.pipeline.fence`, :mod:`streams.pipeline.snapshots`).
6. **Serving** — :mod:`streams.serving` (the FastAPI lookups, dashboard and
   Prometheus metrics over those views) and :mod:`streams.cli` (``kairos``).

Around it: how a worker says how it is (:mod:`streams.pipeline.health`,
:mod:`streams.pipeline.group_watch`, :mod:`streams.pipeline.retry`), bounded
customers and erasure (:mod:`streams.pipeline.expiry`,
:mod:`streams.pipeline.erasure`), and the tools (:mod:`streams.tools`: the
simulator, replay of real data, the dev stack, ``kairos bench`` and
``kairos chaos``, evaluations against exact batch answers).
"""
