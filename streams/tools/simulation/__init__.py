"""A seeded online shop that streams realistic events with planted, known signals.

Start reading at :class:`~streams.tools.simulation.simulator.ShopSimulator`:
it merges what the other modules write into one event-time ordered stream —
``population`` (customer segments), ``catalog`` (SKUs, prices, bundles),
``clock`` (seasonality), ``shopping`` (legit sessions, orders, payments),
``surges`` (demand spikes), ``fraud`` (attack patterns and drift),
``chaos`` (bad messages and redeliveries) and, laid over the stream,
``inventory`` (stock counts, restocks, planted sell-outs). ``ground_truth()`` tells what was
planted, so every model can be scored against it.

>>> sim = ShopSimulator(SimulatorConfig(customers=20, days=0.5))
>>> first = next(iter(sim.events()))
>>> first.topic, first.value["customer_id"] == first.key
('clicks', True)
"""

from streams.tools.simulation.config import SimulatorConfig
from streams.tools.simulation.simulator import ShopSimulator, SimEvent

__all__ = ["ShopSimulator", "SimEvent", "SimulatorConfig"]
