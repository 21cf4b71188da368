"""Fraudsters: three attack patterns, each changing its modus operandi after the drift point.

Before the drift:

* ``card_testing`` — a fresh account fires 5–30 payments of €1–€5, 5–40 s apart,
  over 3–8 new cards from one new device abroad; over half are declined or fail.
  There is no order: each payment carries a synthetic order id.
* ``account_takeover`` — an existing buyer's account orders expensive items from
  a new device with a foreign ``ip_country`` (≠ ``billing_country``), for 2–6x
  their usual order value, often on a new card, at any hour.
* ``high_amount`` — an existing buyer orders for 4–10x their usual value on a new
  card, from their own device and country.

After the drift:

* ``card_testing`` moves into an existing customer's account: €5–€15 payments,
  1–6 minutes apart, on one new card, from the customer's home country; fewer
  declines.
* ``account_takeover`` comes from the customer's *home* country on a new device,
  at night (01:00–05:00 UTC), for a moderate 1–2x their usual value, mostly on
  a card they already hold.
* ``high_amount`` splits into 2–3 orders of 2–4x usual within an hour, on one
  new card from a new device.
"""

from __future__ import annotations

import math
import random

from streams.tools.simulation.catalog import Catalog
from streams.tools.simulation.clock import DAY, HOUR
from streams.tools.simulation.drafts import Draft, IdMint, click, order, payment
from streams.tools.simulation.draws import money
from streams.tools.simulation.population import HOME_COUNTRIES, Customer, instrument_id

#: Share of fraudulent payments per pattern.
PATTERN_SHARES = {"card_testing": 0.5, "account_takeover": 0.3, "high_amount": 0.2}
#: Where attackers' IP addresses appear to be.
FOREIGN_COUNTRIES = ("US", "BR", "NG", "RU", "VN", "ID", "CN", "IN", "UA", "RO", "GB", "TR")


def _status(rng: random.Random, declined: float, failed: float, authorized: float) -> str:
    draw = rng.random()
    if draw < declined:
        return "declined"
    if draw < declined + failed:
        return "failed"
    return "authorized" if draw < declined + failed + authorized else "captured"


class Fraudster:
    """Plans fraud incidents over the run and writes each one's events.

    The fraud budget is ``fraud_rate / (1 - fraud_rate)`` times the expected
    number of legit payments, split by :data:`PATTERN_SHARES`. Each pattern's
    incidents are stratified over the run (one at a uniform time in each of
    ``n`` equal slots) and card-testing bursts are sized to use up their
    share, so the realised fraud share stays close to the target while times
    and sizes look random. Memory: O(1) besides the caller's buyer list.
    """

    def __init__(
        self, rng: random.Random, mint: IdMint, catalog: Catalog, *, fraud_rate: float,
        expected_legit_payments: float, start_ts: float, end_ts: float, drift_ts: float | None,
        first_new_account: int,
    ) -> None:
        self.rng, self.mint, self.catalog = rng, mint, catalog
        self.start_ts, self.end_ts, self.drift_ts = start_ts, end_ts, drift_ts
        budget = fraud_rate / (1 - fraud_rate) * expected_legit_payments
        after_drift = 0.0 if drift_ts is None else (end_ts - drift_ts) / (end_ts - start_ts)
        mean_size = {"card_testing": 17.5, "account_takeover": 1.0, "high_amount": 1.0 + 1.5 * after_drift}
        #: Number of incidents per pattern (stochastically rounded).
        self.incidents = {}
        for pattern, share in PATTERN_SHARES.items():
            expected = budget * share / mean_size[pattern]
            self.incidents[pattern] = math.floor(expected) + (rng.random() < expected % 1)
        self._card_tests_left = budget * PATTERN_SHARES["card_testing"]
        self._bursts_left = self.incidents["card_testing"]
        self._next_account = first_new_account

    def drifted(self, t: float) -> bool:
        """Whether fraud at ``t`` follows the post-drift patterns."""
        return self.drift_ts is not None and t >= self.drift_ts

    def incident_time(self, pattern: str, slot: int) -> float:
        """When the ``slot``-th incident of ``pattern`` happens (post-drift takeovers move to the night)."""
        width = (self.end_ts - self.start_ts) / self.incidents[pattern]
        t = self.start_ts + (slot + self.rng.random()) * width
        if pattern == "account_takeover" and self.drifted(t):
            night = t - t % DAY + HOUR + self.rng.random() * 4 * HOUR
            t = night if night >= t else night + DAY
        return t

    def incident(self, pattern: str, t: float, buyers: list[Customer], anyone: list[Customer]) -> list[Draft]:
        """The events of one incident of ``pattern`` starting at ``t``."""
        victims = buyers or anyone
        victim = victims[self.rng.randrange(len(victims))]
        if pattern == "card_testing":
            return self._card_testing(t, victim)
        if pattern == "account_takeover":
            return self._account_takeover(t, victim)
        return self._high_amount(t, victim)

    def _card_testing(self, t: float, victim: Customer) -> list[Draft]:
        rng, drifted = self.rng, self.drifted(t)
        device = instrument_id(rng, "dev")
        if drifted:
            account, cards = victim.id, [instrument_id(rng, "card")]
            ip_country = billing = victim.home
        else:
            account = f"cust-{self._next_account:06d}"
            self._next_account += 1
            cards = [instrument_id(rng, "card") for _ in range(rng.randint(3, 8))]
            ip_country, billing = rng.choice(FOREIGN_COUNTRIES), rng.choice(list(HOME_COUNTRIES))
        size = min(30, max(5, round(self._card_tests_left / max(1, self._bursts_left) * rng.uniform(0.6, 1.4))))
        self._card_tests_left -= size
        self._bursts_left -= 1
        drafts = []
        for _ in range(size):
            if drifted:
                t += 60 + rng.random() * 300
                amount, status = money(rng.uniform(5, 15)), _status(rng, 0.35, 0.1, 0.25)
            else:
                t += 5 + rng.random() * 35
                amount, status = money(rng.uniform(1, 5)), _status(rng, 0.45, 0.1, 0.2)
            drafts.append(payment(
                t, self.mint.next("pay"), self.mint.next("ord"), account, amount, method="card",
                card=rng.choice(cards), device=device, ip_country=ip_country, billing_country=billing,
                status=status, fraud="card_testing",
            ))
        return drafts

    def _account_takeover(self, t: float, victim: Customer) -> list[Draft]:
        rng = self.rng
        if self.drifted(t):
            factor, ip_country = rng.uniform(1, 2), victim.home
            card = rng.choice(victim.cards) if rng.random() < 0.6 else instrument_id(rng, "card")
        else:
            factor, ip_country = rng.uniform(2, 6), rng.choice(FOREIGN_COUNTRIES)
            card = instrument_id(rng, "card") if rng.random() < 0.6 else rng.choice(victim.cards)
        return self._spree(
            t, victim, [factor], "account_takeover", card=card, device=instrument_id(rng, "dev"), ip_country=ip_country,
        )

    def _high_amount(self, t: float, victim: Customer) -> list[Draft]:
        rng = self.rng
        if self.drifted(t):
            factors = [rng.uniform(2, 4) for _ in range(rng.randint(2, 3))]
            device = instrument_id(rng, "dev")
        else:
            factors, device = [rng.uniform(4, 10)], rng.choice(victim.devices)
        return self._spree(
            t, victim, factors, "high_amount", card=instrument_id(rng, "card"), device=device, ip_country=victim.home,
        )

    def _spree(
        self, t: float, victim: Customer, factors: list[float], pattern: str, *, card: str, device: str, ip_country: str,
    ) -> list[Draft]:
        """Quick sessions that each order items worth ``factor`` x the victim's usual (luxury from 3x), and pay."""
        rng, catalog = self.rng, self.catalog
        drafts = []
        for factor in factors:
            session_id, order_id = self.mint.next("ses"), self.mint.next("ord")
            sku = (catalog.luxury if factor >= 3 else catalog.popular).draw(rng)
            quantity = max(1, min(20, round(factor * victim.usual_amount / catalog.price[sku])))
            t += 5 + rng.random() * 15
            drafts.append(click(t, victim.id, session_id, "view", catalog, sku))
            t += 5 + rng.random() * 15
            drafts.append(click(t, victim.id, session_id, "add_to_cart", catalog, sku))
            t += 10 + rng.random() * 30
            placed = order(t, order_id, victim.id, [(sku, quantity)], catalog, victim.home, "web")
            drafts.append(placed)
            drafts.append(payment(
                t + 2 + rng.random() * 8, self.mint.next("pay"), order_id, victim.id, placed.value["total"],
                method="card", card=card, device=device, ip_country=ip_country, billing_country=victim.home,
                status=_status(rng, 0.1, 0.0, 0.05), fraud=pattern,
            ))
            t += rng.random() * 20 * 60
        return drafts
