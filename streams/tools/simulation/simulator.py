"""The shop simulator: merges shoppers, surges, fraudsters, late labels and chaos into one stream."""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass
from itertools import count
from typing import Any, Callable, Iterable, Iterator

from streams.tools.simulation.catalog import Catalog, plant_bundles
from streams.tools.simulation.chaos import Chaos
from streams.tools.simulation.clock import DAY, HOUR, HOURLY_PROFILE, WEEKDAY_PROFILE, ActivityClock, iso_ms, iso_s
from streams.tools.simulation.config import SimulatorConfig
from streams.tools.simulation.drafts import Draft, IdMint
from streams.tools.simulation.fraud import Fraudster
from streams.tools.simulation.inventory import StockKeeper, daily_units
from streams.tools.simulation.incidents import Incident, IncidentEffects, plant_incidents
from streams.tools.simulation.population import (
    ORDER_REGULARITY, SEGMENTS, Customer, best_selling, populate, segment_samplers,
)
from streams.tools.simulation.shopping import ATTEMPTS_PER_ORDER, Shopper
from streams.tools.simulation.surges import Surge, plant_surges

#: Share of fraud labels that come from a manual review within hours instead of a chargeback days later.
FRAUD_REVIEW_SHARE = 0.2

_EMIT, _BROWSE, _BUY, _SURGE_BUY, _SURGE_VIEW, _FRAUD, _INCIDENT = range(7)
#: Sample baskets that tell how many ordinary orders hold a surging item.
CALIBRATION_BASKETS = 20_000


@dataclass(frozen=True, slots=True)
class SimEvent:
    """One message to send: ``value`` is the wire dict, or raw ``bytes`` for a bad chaos message.

    ``key`` is the customer id (the payment id on ``labels``). ``ts`` is the
    emission time in epoch seconds, non-decreasing over the stream; it equals
    the value's ``ts`` except for a chaos duplicate, which repeats an older event.
    """

    topic: str
    key: str
    value: dict[str, Any] | bytes
    ts: float


class ShopSimulator:
    """A seeded online shop whose event stream carries planted, recoverable signals.

    ``events()`` yields clicks, orders, payments and late fraud labels in
    event-time order, as wire dicts that validate against
    ``streams.pipeline.events.EVENT_TYPES``; ``ground_truth()`` says what was
    planted (segments, bundles, surges, fraud, seasonality, chaos). The stream
    covers ``[start, start + days)``: labels due after the end never arrive.

    What is planted:

    * customers in five latent segments (``population.SEGMENTS``) whose sessions
      follow a daily and weekly seasonality (``clock``);
    * bundles bought together (``catalog.Bundle``) and segment tastes in baskets;
    * demand surges: while one is on, extra buyers of the surging item arrive
      at ``factor - 1`` times its usual order rate, and extra visitors who
      view it and leave, so that its views too run at about ``factor``
      times their usual rate (``surges``): interest and sales rise together;
    * fraud patterns with drift (``fraud``) and legit noise (``shopping``);
    * with ``inventory_skus``, stock counts, restocks and planted sell-outs of
      the best sellers (``inventory``);
    * chaos: after each event, with probability ``chaos``, a bad message or a
      redelivery (``chaos``), drawn from its own generator so the valid stream
      does not change with ``chaos``;
    * traffic incidents (``incidents``): bot bursts, gateway failures, checkout
      breaks, card-testing waves and broken producers, for the anomaly detector.

    Memory is bounded: O(customers + skus) for the shop; a heap holding each
    customer's next browse and next order, the events of sessions in progress
    and the labels due within five days (about 2 x customers entries, plus
    what is in flight); ground truth holds one entry per fraudulent payment.

    >>> sim = ShopSimulator(SimulatorConfig(customers=50, days=2, seed=3))
    >>> events = list(sim.events())
    >>> sorted({e.topic for e in events})
    ['clicks', 'labels', 'orders', 'payments']
    >>> all(a.ts <= b.ts for a, b in zip(events, events[1:]))
    True
    >>> sorted(sim.ground_truth()["segment_names"])[:2]
    ['bargain_hunters', 'lapsing']
    """

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        cfg = self.config
        self.catalog = Catalog(self._rng("catalog"), cfg.skus, cfg.categories)
        self.clock = ActivityClock(cfg.start_ts)
        self.tastes = segment_samplers(self.catalog)
        ranking = best_selling(self.tastes)
        self.bundles = plant_bundles(self._rng("bundles"), self.catalog, ranking)
        self.surges: list[Surge] = plant_surges(
            self._rng("surges"), self.catalog, ranking, cfg.surges, cfg.start_ts, cfg.end_ts)
        customers = self._customers()
        self._segments = {c.id: SEGMENTS[c.segment].name for c in customers}
        self._usual = self._usual_orders_per_active_day(customers)
        self._usual_views = self._usual_views_per_active_day(customers)
        #: Per surge, its extra orders per active day: ``factor - 1`` times the usual ones.
        self._surge_rates = [(surge.factor - 1) * usual for surge, usual in zip(self.surges, self._usual)]
        #: Per surge, its extra visitors who view the item and leave: with the extra buyers' views of it, the
        #: item's views run at about ``factor`` times their usual rate.
        self._viewer_rates = [
            (surge.factor - 1) * max(0.0, views - orders)
            for surge, views, orders in zip(self.surges, self._usual_views, self._usual)
        ]
        self.incidents: list[Incident] = plant_incidents(self._rng("incidents"), cfg.incidents, cfg.start_ts,
                                                         cfg.end_ts)
        self._fraud_payments: dict[str, str] = {}
        self._chaos: Chaos | None = None
        self._daily_units: dict[str, float] | None = None
        self._stock: StockKeeper | None = None

    def _rng(self, stream: str) -> random.Random:
        return random.Random(f"{self.config.seed}:{stream}")

    def _customers(self) -> list[Customer]:
        cfg = self.config
        return populate(self._rng("customers"), cfg.customers, cfg.start_ts, cfg.end_ts, cfg.browsing)

    def _usual_orders_per_active_day(self, customers: list[Customer]) -> list[float]:
        """Per surge, the ordinary orders holding its item expected per active day, from sample baskets.

        Each sample is the basket of a customer drawn at random, drawn as an
        ordinary order draws it (taste, distinct lines, bundle companions, the
        odd luxury item). A closed form of the line draws alone missed
        bundles and distinct lines and was off by up to 1.7x, so a planted
        factor was not what the orders showed.
        """
        def basket(shopper: Shopper, _: random.Random, customer: Customer) -> tuple[float, list[str]]:
            return 1 / customer.order_every_days, [sku for sku, _ in shopper.basket(customer)]

        return self._sampled_per_active_day(customers, "surge-calibration", basket, any)

    def _usual_views_per_active_day(self, customers: list[Customer]) -> list[float]:
        """Per surge, the ordinary views of its item expected per active day, from sample sessions.

        Each sample is a session of a customer drawn at random, buying with
        the customer's share of buying sessions (which also view the basket
        lines they had not viewed), weighted by the customer's sessions per
        active day.
        """
        def session(shopper: Shopper, rng: random.Random, customer: Customer) -> tuple[float, list[str]]:
            orders = 1 / customer.order_every_days
            sessions = customer.browse_per_day + orders
            drafts = shopper.session(customer, 0.0, buying=rng.random() < orders / sessions)
            return sessions, [d.value["sku"] for d in drafts if d.topic == "clicks" and d.value["action"] == "view"]

        return self._sampled_per_active_day(customers, "surge-view-calibration", session, sum)

    def _sampled_per_active_day(
        self, customers: list[Customer], stream: str,
        sample: Callable[[Shopper, random.Random, Customer], tuple[float, list[str]]],
        tally: Callable[[Iterable[bool]], int],
    ) -> list[float]:
        """Per surge, ``rate x tally(SKUs covering its item)`` per active day over the shop, from samples.

        ``sample`` gives a random customer's rate per active day and the SKUs
        of one draw (a basket, a session's views); ``tally`` is ``any`` (the
        draw holds the item) or ``sum`` (how many times). Samples come from a
        generator of their own, so the stream does not depend on them; a
        customer lapsed by the surge's start does not count.
        """
        if not self.surges:
            return []
        rng = self._rng(stream)
        shopper = Shopper(rng, IdMint(self.config.seed), self.catalog, self.tastes, self.bundles)
        totals = [0.0] * len(self.surges)
        for _ in range(CALIBRATION_BASKETS):
            customer = customers[rng.randrange(len(customers))]
            rate, skus = sample(shopper, rng, customer)
            for i, surge in enumerate(self.surges):
                if customer.lapse_at > surge.start:
                    totals[i] += rate * tally(surge.covers(sku, self.catalog) for sku in skus)
        return [total * len(customers) / CALIBRATION_BASKETS for total in totals]

    def _expected_legit_payments(self, customers: list[Customer]) -> float:
        """Expected number of legit payments over the run: ordinary and surge orders, with retries."""
        start, end, clock = self.config.start_ts, self.config.end_ts, self.clock
        ordinary = sum(clock.active_days(start, min(end, c.lapse_at)) / c.order_every_days for c in customers)
        surging = sum(rate * clock.active_days(s.start, s.end) for s, rate in zip(self.surges, self._surge_rates))
        return (ordinary + surging) * ATTEMPTS_PER_ORDER

    def events(self) -> Iterator[SimEvent]:
        """The stream, in event-time order; each call replays the same run from the start.

        With ``inventory_skus``, inventory counts are laid over it (:class:`StockKeeper`; the first call makes a
        first pass over the run to learn each SKU's usual demand); the other events do not change.
        """
        run = _Run(self)
        self._fraud_payments, self._chaos = run.fraud_payments, run.chaos
        cfg = self.config
        if not cfg.inventory_skus:
            return iter(run)
        if self._daily_units is None:
            orders = (e.value for e in _Run(self) if e.topic == "orders" and isinstance(e.value, dict))
            self._daily_units = daily_units(orders, cfg.inventory_skus, cfg.days)
        self._stock = StockKeeper(self._rng("inventory"), cfg.seed, self._daily_units, cfg.sellouts,
                                  cfg.start_ts, cfg.end_ts)
        return self._stock.overlay(run, SimEvent)

    def ground_truth(self) -> dict[str, Any]:
        """What was planted, as JSON-ready data; fraud and chaos are complete once ``events()`` is exhausted.

        ``weekday_profile`` starts on Monday; profiles are in UTC with mean 1.
        Each surge also says how many ordinary orders hold its item per active
        day (``usual_orders_per_active_day``, see :class:`ActivityClock`): the
        surge adds ``factor - 1`` times that, so the evidence a surge leaves in
        its first hours can be worked out; ``usual_views_per_active_day`` is
        the same for views of its item (approximate, see
        :meth:`_usual_views_per_active_day`), which the surge also multiplies.
        """
        drift = self.config.drift_ts
        chaos = self._chaos
        return {
            "segments": dict(self._segments),
            "segment_names": [s.name for s in SEGMENTS],
            "bundles": [[b.head, *b.companions] for b in self.bundles],
            "surges": [
                s.truth() | {"usual_orders_per_active_day": round(usual, 4),
                             "usual_views_per_active_day": round(views, 4)}
                for s, usual, views in zip(self.surges, self._usual, self._usual_views)
            ],
            "fraud_payments": dict(self._fraud_payments),
            "drift_at": None if drift is None else iso_s(drift),
            "hourly_profile": list(HOURLY_PROFILE),
            "weekday_profile": list(WEEKDAY_PROFILE),
            "chaos": {
                "bad": sum(chaos.bad_by_kind.values()) if chaos else 0,
                "duplicates": chaos.duplicates if chaos else 0,
                "bad_by_kind": dict(chaos.bad_by_kind) if chaos else {},
            },
            "incidents": [incident.truth() for incident in self.incidents],
        } | ({"inventory": self._stock.truth()} if self._stock is not None else {})


class _Run:
    """One pass over the simulated period: the shop's changing state and a heap of what happens next.

    Heap entries are ``(ms, sequence, kind, payload)``: an event to emit, or a
    customer's next browse or order, a surge's next extra order, a fraud
    incident. Handling an entry only schedules things at or after its time, so
    popping the heap yields event-time order.
    """

    def __init__(self, sim: ShopSimulator) -> None:
        cfg = self.config = sim.config
        self.sim, self.clock = sim, sim.clock
        self.customers = sim._customers()
        self.schedule, self.labels = sim._rng("schedule"), sim._rng("labels")
        mint = IdMint(cfg.seed)
        self.shopper = Shopper(sim._rng("shopping"), mint, sim.catalog, sim.tastes, sim.bundles)
        self.fraudster = Fraudster(
            sim._rng("fraud"), mint, sim.catalog, fraud_rate=cfg.fraud_rate,
            expected_legit_payments=sim._expected_legit_payments(self.customers), start_ts=cfg.start_ts,
            end_ts=cfg.end_ts, drift_ts=cfg.drift_ts, first_new_account=cfg.customers + 1,
        )
        self.chaos = Chaos(sim._rng("chaos"), cfg.seed)
        self.effects = IncidentEffects(sim.incidents, sim._rng("incident-effects"), sim.catalog, sim.clock,
                                       cfg.customers, cfg.seed)
        self.fraud_payments: dict[str, str] = {}
        self.heap: list[tuple[int, int, int, Any]] = []
        self.sequence = count()
        self.now_ms = 0

    def push(self, t: float, kind: int, payload: Any) -> None:
        """Schedule ``payload`` at ``t`` (never before now)."""
        heapq.heappush(self.heap, (max(int(t * 1000), self.now_ms), next(self.sequence), kind, payload))

    def push_next_browse(self, index: int, t: float) -> None:
        """Schedule customer ``index``'s next browsing session after ``t`` (Poisson, seasonal)."""
        customer = self.customers[index]
        t = self.clock.advance(t, self.schedule.expovariate(customer.browse_per_day))
        if t < customer.lapse_at and t < self.config.end_ts:
            self.push(t, _BROWSE, index)

    def push_next_order(self, index: int, t: float, first: bool = False) -> None:
        """Schedule customer ``index``'s next order after ``t`` (gamma renewal, seasonal).

        The first gap is a uniform share of a length-biased gap, so the run starts
        in the middle of everyone's buying cycle (the renewal process is stationary).
        """
        customer, schedule = self.customers[index], self.schedule
        scale = customer.order_every_days / ORDER_REGULARITY
        if first:
            gap = schedule.random() * schedule.gammavariate(ORDER_REGULARITY + 1, scale)
        else:
            gap = schedule.gammavariate(ORDER_REGULARITY, scale)
        t = self.clock.advance(t, gap)
        if t < customer.lapse_at and t < self.config.end_ts:
            self.push(t, _BUY, index)

    def push_next_surge_visit(self, index: int, t: float, buying: bool) -> None:
        """Schedule surge ``index``'s next extra buyer (``buying``) or extra visitor (views its item, does not
        buy) after ``t``, while the surge lasts."""
        rate = (self.sim._surge_rates if buying else self.sim._viewer_rates)[index]
        if rate > 0:
            t = self.clock.advance(t, self.schedule.expovariate(rate))
            if t < self.sim.surges[index].end:
                self.push(t, _SURGE_BUY if buying else _SURGE_VIEW, index)

    def push_next_injection(self, index: int, t: float) -> None:
        """Schedule incident ``index``'s next injected event (bots, card testers) after ``t``, while it lasts."""
        following = self.effects.next_injection(index, t)
        if following is not None:
            self.push(following, _INCIDENT, index)

    def surge_session(self, index: int, t: float, buying: bool) -> list[Draft]:
        """A session viewing surge ``index``'s item (an order holding it, when ``buying``) by a random customer."""
        surge, schedule, customers = self.sim.surges[index], self.schedule, self.customers
        visitor = customers[schedule.randrange(len(customers))]
        while visitor.lapse_at <= t:
            visitor = customers[schedule.randrange(len(customers))]
        forced = surge.key if surge.scope == "sku" else self.sim.catalog.by_category[surge.key].draw(schedule)
        self.push_next_surge_visit(index, t, buying)
        return self.shopper.session(visitor, t, buying=buying, forced=forced)

    def fraud_incident(self, pattern: str, slot: int, t: float) -> list[Draft]:
        """The ``slot``-th incident of ``pattern``; schedules the next one."""
        fraudster = self.fraudster
        if slot + 1 < fraudster.incidents[pattern]:
            self.push(fraudster.incident_time(pattern, slot + 1), _FRAUD, (pattern, slot + 1))
        return fraudster.incident(pattern, t, self.shopper.buyers, self.customers)

    def judge(self, draft: Draft, payment_id: str, t: float) -> None:
        """Record a fraudulent payment and schedule the label that will (maybe) reveal it."""
        rng = self.labels
        if draft.fraud is not None:
            self.fraud_payments[payment_id] = draft.fraud
            if rng.random() < FRAUD_REVIEW_SHARE:
                delay, source = rng.uniform(1, 12) * HOUR, "review"
            else:
                delay, source = rng.uniform(1, 5) * DAY, "chargeback"
            label = {"payment_id": payment_id, "is_fraud": True, "source": source}
        elif rng.random() < self.config.label_share_legit:
            delay = rng.uniform(1, 12) * HOUR
            label = {"payment_id": payment_id, "is_fraud": False, "source": "review"}
        else:
            return
        self.push(t + delay, _EMIT, Draft(t + delay, "labels", payment_id, label))

    def __iter__(self) -> Iterator[SimEvent]:
        cfg, heap, customers, shopper, chaos = self.config, self.heap, self.customers, self.shopper, self.chaos
        for index in range(len(customers)):
            self.push_next_browse(index, cfg.start_ts)
            self.push_next_order(index, cfg.start_ts, first=True)
        for index, surge in enumerate(self.sim.surges):
            self.push_next_surge_visit(index, surge.start, buying=True)
            self.push_next_surge_visit(index, surge.start, buying=False)
        for pattern, incidents in self.fraudster.incidents.items():
            if incidents:
                self.push(self.fraudster.incident_time(pattern, 0), _FRAUD, (pattern, 0))
        for index, incident in enumerate(self.sim.incidents):
            self.push_next_injection(index, incident.start)
        end_ms, event_numbers = int(cfg.end_ts * 1000), count(1)
        while heap:
            now_ms, _, kind, payload = heapq.heappop(heap)
            if now_ms >= end_ms:
                return
            self.now_ms, t = now_ms, now_ms / 1000
            if kind == _EMIT:
                value = {"event_id": f"ev-{cfg.seed}-{next(event_numbers)}", "ts": iso_ms(now_ms), **payload.value}
                if self.sim.incidents:
                    changed = self.effects.apply(payload.topic, value, t)
                    if changed is None:
                        continue
                    if isinstance(changed, bytes):
                        yield SimEvent(payload.topic, payload.key, changed, t)
                        continue
                    value = changed
                if payload.topic == "payments":
                    self.judge(payload, value["payment_id"], t)
                yield SimEvent(payload.topic, payload.key, value, t)
                if cfg.chaos:
                    chaos.remember(payload.topic, payload.key, value)
                    if chaos.rng.random() < cfg.chaos:
                        yield SimEvent(*chaos.message(), t)
                continue
            if kind == _BROWSE:
                drafts = shopper.session(customers[payload], t, buying=False)
                self.push_next_browse(payload, t)
            elif kind == _BUY:
                drafts = shopper.session(customers[payload], t, buying=True)
                self.push_next_order(payload, t)
            elif kind == _SURGE_BUY:
                drafts = self.surge_session(payload, t, buying=True)
            elif kind == _SURGE_VIEW:
                drafts = self.surge_session(payload, t, buying=False)
            elif kind == _INCIDENT:
                drafts = [Draft(t, *self.effects.inject(payload, t))]
                self.push_next_injection(payload, t)
            else:
                drafts = self.fraud_incident(*payload, t)
            for draft in drafts:
                self.push(draft.t, _EMIT, draft)
