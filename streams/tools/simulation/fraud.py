"""Fraudsters: three attack patterns, and how the ring adapts to detection after the drift point.

Before the drift the ring is crude, and the classic signals catch it:

* ``card_testing`` — a fresh account fires 5–30 payments of €1–€5, 5–40 s apart,
  over 3–8 new cards from one new device abroad; over half are declined or fail.
  There is no order: each payment carries a synthetic order id.
* ``account_takeover`` — an existing buyer's account orders expensive items from
  a new device with a foreign ``ip_country`` (≠ ``billing_country``), for 2–6x
  their usual order value, often on a new card, at any hour.
* ``high_amount`` — an existing buyer orders for 4–10x their usual value on a new
  card, from their own device and country.

None of them browses: card testing sends no clicks at all, the others one view
and one add-to-cart per order, so "no browsing before paying" catches them too.

After the drift (``fraud_drift_at``) the ring buys infostealer logs — victims'
session cookies and browser fingerprints — and residential proxies in the
victims' countries, and scripts a human-looking browsing session
(:data:`SCRIPTED_VIEWS` views of popular items, 5–40 s apart) before every
payment. Every post-drift incident therefore runs in an existing buyer's
account, from one of *that customer's own devices*, with ``ip_country`` =
``billing_country`` = their home country, after as much browsing as a
customer's own buying session, for no more than 1.5x the customer's usual
amount. The signals a model fitted before the drift relies on — new device,
foreign or mismatched IP country, an amount far above usual, a fresh account,
a burst of payments and cards on one account, no browsing — are all gone, and
some point the wrong way (more browsing, a wallet instead of a card). What
still gives each pattern away is different:

* ``card_testing`` goes low and slow: each test runs in a *different*
  hijacked account (one payment per account), 20–90 minutes apart, so a
  campaign of 5–30 tests lasts hours to a day; each is a €5.50–€15 gift-card
  top-up (no order) on a stolen card new to that account, and over half are
  declined or fail. Signal: a new card paying far *below* the customer's usual.
* ``account_takeover`` happens at night (01:00–05:00 UTC, while the victim
  sleeps) and pays through the victim's stored PayPal for 0.7–1.5x their usual
  order value. Signal: the hour and the wallet.
* ``high_amount`` becomes order splitting: 2–3 orders of 0.7–1.5x the usual
  value within about an hour, all on one stolen card new to the account (the
  pattern keeps its name). Signal: a new card used repeatedly within the hour.

Legitimate shopping does not change at the drift (shoppers draw from their own
random stream). Ground truth names each fraudulent payment's pattern, before
and after the drift alike.
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
#: Views of the scripted browsing session before each post-drift payment (inclusive range).
SCRIPTED_VIEWS = (8, 20)


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
        if self.drifted(t):
            if pattern == "card_testing":
                return self._spread_card_tests(t, victim, victims)
            if pattern == "account_takeover":
                return self._night_takeover(t, victim)
            return self._split_orders(t, victim)
        if pattern == "card_testing":
            return self._card_testing(t)
        if pattern == "account_takeover":
            return self._account_takeover(t, victim)
        return self._high_amount(t, victim)

    def _burst_size(self) -> int:
        """Payments in the next card-testing burst, sized to use up the pattern's remaining budget."""
        size = min(30, max(5, round(self._card_tests_left / max(1, self._bursts_left) * self.rng.uniform(0.6, 1.4))))
        self._card_tests_left -= size
        self._bursts_left -= 1
        return size

    def _card_testing(self, t: float) -> list[Draft]:
        rng = self.rng
        device = instrument_id(rng, "dev")
        account = f"cust-{self._next_account:06d}"
        self._next_account += 1
        cards = [instrument_id(rng, "card") for _ in range(rng.randint(3, 8))]
        ip_country, billing = rng.choice(FOREIGN_COUNTRIES), rng.choice(list(HOME_COUNTRIES))
        drafts = []
        for _ in range(self._burst_size()):
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
        factor, ip_country = rng.uniform(2, 6), rng.choice(FOREIGN_COUNTRIES)
        card = instrument_id(rng, "card") if rng.random() < 0.6 else rng.choice(victim.cards)
        return self._spree(
            t, victim, [factor], "account_takeover", card=card, device=instrument_id(rng, "dev"), ip_country=ip_country,
        )

    def _high_amount(self, t: float, victim: Customer) -> list[Draft]:
        rng = self.rng
        factors, device = [rng.uniform(4, 10)], rng.choice(victim.devices)
        return self._spree(
            t, victim, factors, "high_amount", card=instrument_id(rng, "card"), device=device, ip_country=victim.home,
        )

    def _spread_card_tests(self, t: float, victim: Customer, victims: list[Customer]) -> list[Draft]:
        """Post-drift card testing: one gift-card top-up per hijacked account, 20-90 minutes apart."""
        rng = self.rng
        drafts: list[Draft] = []
        for test in range(self._burst_size()):
            if test:
                victim = victims[rng.randrange(len(victims))]
                t += 20 * 60 + rng.random() * 70 * 60
            t = self._browse(t, victim, self.mint.next("ses"), drafts)
            t += 10 + rng.random() * 30
            drafts.append(payment(
                t, self.mint.next("pay"), self.mint.next("ord"), victim.id, money(rng.uniform(5.5, 15)),
                method="card", card=instrument_id(rng, "card"), device=rng.choice(victim.devices),
                ip_country=victim.home, billing_country=victim.home, status=_status(rng, 0.45, 0.1, 0.2),
                fraud="card_testing",
            ))
        return drafts

    def _night_takeover(self, t: float, victim: Customer) -> list[Draft]:
        """Post-drift takeover: a hijacked session at night, paying an ordinary order with the victim's PayPal."""
        rng = self.rng
        return self._spree(
            t, victim, [rng.uniform(0.7, 1.5)], "account_takeover", card=rng.choice(victim.cards),
            device=rng.choice(victim.devices), ip_country=victim.home, method="paypal", scripted=True,
        )

    def _split_orders(self, t: float, victim: Customer) -> list[Draft]:
        """Post-drift high-amount fraud: 2-3 ordinary-sized orders within the hour on one stolen card."""
        rng = self.rng
        factors = [rng.uniform(0.7, 1.5) for _ in range(rng.randint(2, 3))]
        return self._spree(
            t, victim, factors, "high_amount", card=instrument_id(rng, "card"), device=rng.choice(victim.devices),
            ip_country=victim.home, scripted=True,
        )

    def _browse(self, t: float, victim: Customer, session_id: str, drafts: list[Draft]) -> float:
        """Append a scripted, human-looking run of views of popular items; returns the time of the last."""
        rng, catalog = self.rng, self.catalog
        for _ in range(rng.randint(*SCRIPTED_VIEWS)):
            t += 5 + rng.random() * 35
            drafts.append(click(t, victim.id, session_id, "view", catalog, catalog.popular.draw(rng)))
        return t

    def _spree(
        self, t: float, victim: Customer, factors: list[float], pattern: str, *, card: str, device: str,
        ip_country: str, method: str = "card", scripted: bool = False,
    ) -> list[Draft]:
        """Quick sessions that each order items worth ``factor`` x the victim's usual (luxury from 3x), and pay.

        A ``scripted`` session browses like a human (:meth:`_browse`) before the cart.
        """
        rng, catalog = self.rng, self.catalog
        drafts: list[Draft] = []
        for factor in factors:
            session_id, order_id = self.mint.next("ses"), self.mint.next("ord")
            sku = (catalog.luxury if factor >= 3 else catalog.popular).draw(rng)
            quantity = max(1, min(20, round(factor * victim.usual_amount / catalog.price[sku])))
            if scripted:
                t = self._browse(t, victim, session_id, drafts)
            t += 5 + rng.random() * 15
            drafts.append(click(t, victim.id, session_id, "view", catalog, sku))
            t += 5 + rng.random() * 15
            drafts.append(click(t, victim.id, session_id, "add_to_cart", catalog, sku))
            t += 10 + rng.random() * 30
            placed = order(t, order_id, victim.id, [(sku, quantity)], catalog, victim.home, "web")
            drafts.append(placed)
            drafts.append(payment(
                t + 2 + rng.random() * 8, self.mint.next("pay"), order_id, victim.id, placed.value["total"],
                method=method, card=card, device=device, ip_country=ip_country, billing_country=victim.home,
                status=_status(rng, 0.1, 0.0, 0.05), fraud=pattern,
            ))
            t += rng.random() * 20 * 60
        return drafts
