"""Replay sources: public data sets read into wire-format events, for ``kairos replay`` and the evaluations.

- :mod:`~streams.tools.sources.retail_csv` — retail transaction CSVs (the UCI
  Online Retail layout, any column mapping) into ``orders``.
- :mod:`~streams.tools.sources.groceries` — basket-per-line files (Groceries)
  and item-per-row files (the bakery) into baskets and ``orders``.
- :mod:`~streams.tools.sources.paysim` — the PaySim sample into ``payments``
  and late ``labels``.
- :mod:`~streams.tools.sources.creditcard` — card-fraud CSVs in the ULB layout
  into ``payments`` carrying their ``V<n>`` signals as ``features``, and late
  ``labels``.
- :mod:`~streams.tools.sources.pacing` — send time-ordered events at a speed
  factor of their event time.
"""
