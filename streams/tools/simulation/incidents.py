"""Planted traffic incidents: what the anomaly detector must catch, with their ground truth.

Five kinds, each a way a live shop breaks within minutes:

* ``bot_burst`` — bots view random products at 2–4 times the shop's usual
  view rate (they never add to cart);
* ``gateway_failure`` — the card gateway fails 50–80 % of card payments;
* ``checkout_break`` — no order or payment gets through (browsing and
  add-to-cart go on as usual);
* ``card_testing`` — a wave of small payments on fresh cards and devices,
  mostly declined, at 1–2 times the usual payment rate;
* ``broken_producer`` — a release of the click producer sends 30–50 % of
  clicks without their ``session_id`` (dead letters).

Incidents last 20–45 minutes, start between 07:00 and 22:00 UTC after the
first six hours (the detectors' warm-up), at least four hours apart, kinds in
turn. Their effects draw from their own generator, so with ``incidents=0``
the stream is exactly the one without this module.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

from streams.tools.simulation.catalog import Catalog
from streams.tools.simulation.clock import HOUR, ActivityClock, iso_s

KINDS = ("bot_burst", "gateway_failure", "checkout_break", "card_testing", "broken_producer")
#: Usual views and payments per customer and (average) day, measured on the simulator (20k customers, a day).
VIEWS_PER_CUSTOMER_DAY = 10.8
PAYMENTS_PER_CUSTOMER_DAY = 0.39
#: Incidents start this long after the run's start, and at least GAP apart.
WARMUP = 6 * HOUR
GAP = 4 * HOUR
MINUTE = 60.0


@dataclass(frozen=True, slots=True)
class Incident:
    """One planted incident: its kind, when, and how strong (``intensity``: a rate factor or a share)."""

    kind: str
    start: float
    end: float
    intensity: float

    def active(self, t: float) -> bool:
        return self.start <= t < self.end

    def truth(self) -> dict[str, Any]:
        return {"kind": self.kind, "start": iso_s(self.start), "end": iso_s(self.end), "start_ts": self.start,
                "end_ts": self.end, "intensity": round(self.intensity, 3)}


def plant_incidents(rng: random.Random, count: int, start_ts: float, end_ts: float) -> list[Incident]:
    """Up to ``count`` incidents, kinds in turn from a random first one (fewer if the run is too short).

    >>> start = 1_793_491_200.0
    >>> [i.kind for i in plant_incidents(random.Random(1), 3, start, start + 2 * 86_400)]
    ['gateway_failure', 'checkout_break', 'card_testing']
    """
    incidents: list[Incident] = []
    first = rng.randrange(len(KINDS))
    t = start_ts + WARMUP
    while len(incidents) < count:
        t += rng.uniform(0, 2 * HOUR)
        hour = (t % 86_400) / HOUR
        if hour < 7 or hour >= 22:  # move to the next 07:00
            t += ((7 - hour) % 24) * HOUR
        duration = rng.uniform(20, 45) * MINUTE
        if t + duration >= end_ts:
            break
        kind = KINDS[(first + len(incidents)) % len(KINDS)]
        intensity = {"bot_burst": rng.uniform(2, 4), "gateway_failure": rng.uniform(0.5, 0.8),
                     "checkout_break": 1.0, "card_testing": rng.uniform(1, 2),
                     "broken_producer": rng.uniform(0.3, 0.5)}[kind]
        incidents.append(Incident(kind, t, t + duration, intensity))
        t += duration + GAP
    return incidents


class IncidentEffects:
    """Applies the incidents to the stream: changes or drops events, and makes the injected ones."""

    def __init__(self, incidents: list[Incident], rng: random.Random, catalog: Catalog, clock: ActivityClock,
                 customers: int, seed: int) -> None:
        self.incidents = incidents
        self.rng = rng
        self.catalog = catalog
        self.clock = clock
        self.customers = customers
        self.seed = seed
        self.injected = 0

    def _active(self, kind: str, t: float) -> Incident | None:
        for incident in self.incidents:
            if incident.kind == kind and incident.active(t):
                return incident
        return None

    def apply(self, topic: str, value: dict[str, Any], t: float) -> dict[str, Any] | bytes | None:
        """The event as the incidents leave it: as is, changed, broken (``bytes``) or dropped (``None``)."""
        if topic in ("orders", "payments") and self._active("checkout_break", t):
            return None
        if topic == "payments" and value.get("method") == "card":
            failure = self._active("gateway_failure", t)
            if failure is not None and self.rng.random() < failure.intensity:
                return {**value, "status": "failed"}
        if topic == "clicks":
            broken = self._active("broken_producer", t)
            if broken is not None and self.rng.random() < broken.intensity:
                return json.dumps({k: v for k, v in value.items() if k != "session_id"}).encode()
        return value

    def next_injection(self, index: int, t: float) -> float | None:
        """When incident ``index`` (a bot burst or card-testing wave) injects its next event after ``t``."""
        incident = self.incidents[index]
        if incident.kind == "bot_burst":
            per_minute = VIEWS_PER_CUSTOMER_DAY * self.customers / 1440
        elif incident.kind == "card_testing":
            per_minute = PAYMENTS_PER_CUSTOMER_DAY * self.customers / 1440
        else:
            return None
        rate = incident.intensity * per_minute * max(0.1, self.clock.activity(t)) / MINUTE
        following = max(t, incident.start) + self.rng.expovariate(rate)
        return following if following < incident.end else None

    def inject(self, index: int, t: float) -> tuple[str, str, dict[str, Any]]:
        """One injected event ``(topic, key, value)`` of incident ``index`` (without ``event_id``/``ts``)."""
        rng, incident = self.rng, self.incidents[index]
        self.injected += 1
        number = self.injected
        if incident.kind == "bot_burst":
            bot = f"bot-{self.seed}-{rng.randrange(50)}"
            sku = self.catalog.skus[rng.randrange(len(self.catalog.skus))]
            return "clicks", bot, {"customer_id": bot, "session_id": f"bots-{self.seed}-{index}", "action": "view",
                                   "sku": sku, "category": self.catalog.category[sku],
                                   "price": self.catalog.price[sku]}
        tester = f"tester-{self.seed}-{index}-{rng.randrange(20)}"
        return "payments", tester, {
            "payment_id": f"ct-pay-{self.seed}-{number}", "order_id": f"ct-ord-{self.seed}-{number}",
            "customer_id": tester, "amount": round(rng.uniform(1, 5), 2), "currency": "EUR", "method": "card",
            "card_fingerprint": f"ct-card-{self.seed}-{number}", "device_id": f"ct-dev-{self.seed}-{number}",
            "ip_country": "RU", "billing_country": "DE",
            "status": "declined" if rng.random() < 0.85 else "authorized",
        }
