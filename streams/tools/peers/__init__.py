"""Peers of ``kairos bench --peer``: the same work on another engine, and how every run is measured.

- :mod:`.measure` — what a run reports: events/s from its first to its last
  event, the CPU it used meanwhile and its peak RSS, read the same way for
  every process.
- :mod:`.workload` — a folder of JSON Lines per topic (``kairos simulate
  --out``, a replay) as the events every system is given.
- :mod:`.ceiling` — a raw aiokafka consumer + ``json.loads``: the ceiling.
- :mod:`.quix` — the Quix Streams peer (needs the ``bench`` extra).

``python -m streams.tools.peers ceiling|quix ...`` runs one of them in a
process of its own and prints its :class:`~.measure.Measurement` as JSON.
"""
