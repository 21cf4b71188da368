"""Legitimate shopping: a customer's session of clicks, and sometimes an order and its payment."""

from __future__ import annotations

import random

from streams.tools.simulation.catalog import Bundle, Catalog, WeightedChoice
from streams.tools.simulation.drafts import Draft, IdMint, click, order, payment
from streams.tools.simulation.draws import poisson
from streams.tools.simulation.population import HOME_COUNTRIES, METHODS, Customer, instrument_id

#: Legit noise that makes fraud detection non-trivial: per payment, shopping
#: abroad (often on a new device), a new device or card, another method; per
#: order, one expensive item; per declined or failed payment, a retry.
TRAVEL_PROB = 0.05
NEW_DEVICE_PROB = 0.05
NEW_DEVICE_PROB_TRAVELLING = 0.3
NEW_CARD_PROB = 0.04
NEW_CARD_PROB_TRAVELLING = 0.1
OTHER_METHOD_PROB = 0.1
BIG_PURCHASE_PROB = 0.02
RETRY_PROB = 0.7
#: Outcomes of a legit payment attempt and their chances.
LEGIT_STATUSES = {"captured": 0.955, "authorized": 0.02, "declined": 0.02, "failed": 0.005}
#: Expected payment attempts per legit order, retries included.
ATTEMPTS_PER_ORDER = 1 + (LEGIT_STATUSES["declined"] + LEGIT_STATUSES["failed"]) * RETRY_PROB
#: Wallet caps: a customer keeps their most recent cards and devices.
MAX_CARDS = 3
MAX_DEVICES = 3
TRAVEL_COUNTRIES = (*HOME_COUNTRIES, "GB", "CH", "US", "PT", "GR", "TR", "TH", "BR", "IN", "VN", "ID", "CN")


def _gap(rng: random.Random) -> float:
    """Seconds between two clicks of a session."""
    return 3.0 + rng.expovariate(1 / 30)


class Shopper:
    """Writes legitimate sessions for any customer of a catalog.

    A session is searches and views interleaved; a buying session then views and
    adds its basket to the cart and places the order, paid a few seconds later
    (a declined payment is usually retried with another card a minute later);
    other sessions sometimes leave items in the cart (abandonment). Baskets draw
    SKUs by the segment's taste, pull in planted bundle companions, and now and
    then hold one expensive item (a legit big purchase).
    """

    def __init__(
        self, rng: random.Random, mint: IdMint, catalog: Catalog, tastes: list[WeightedChoice[str]],
        bundles: list[Bundle],
    ) -> None:
        self.rng = rng
        self.mint = mint
        self.catalog = catalog
        #: Per segment, how its customers pick SKUs.
        self.samplers = tastes
        self.bundle_of = {bundle.head: bundle for bundle in bundles}
        self._statuses = WeightedChoice(list(LEGIT_STATUSES), list(LEGIT_STATUSES.values()))
        #: Customers who have ordered at least once, in order of their first order (fraudsters' victims).
        self.buyers: list[Customer] = []

    def basket(self, customer: Customer, forced: str | None = None) -> list[tuple[str, int]]:
        """``(sku, quantity)`` lines for one order; ``forced`` is a SKU the basket must hold."""
        rng, sampler = self.rng, self.samplers[customer.segment]
        size = 1 + poisson(rng, customer.lines_per_order - 1)
        skus = [forced] if forced else []
        for _ in range(3 * size):
            if len(skus) >= size:
                break
            sku = sampler.draw(rng)
            if sku not in skus:
                skus.append(sku)
        if rng.random() < BIG_PURCHASE_PROB:
            skus.append(self.catalog.luxury.draw(rng))
        for sku in list(skus):
            bundle = self.bundle_of.get(sku)
            if bundle is not None:
                skus.extend(c for c in bundle.companions if c not in skus and rng.random() < bundle.strength)
        return [(sku, 1 + poisson(rng, customer.extra_units_per_line)) for sku in dict.fromkeys(skus)]

    def session(self, customer: Customer, t: float, buying: bool, forced: str | None = None) -> list[Draft]:
        """The events of one session starting at ``t``; a buying one ends in an order (holding ``forced``).

        A session that does not buy but is given ``forced`` is a visitor who
        came for that item (a surge's extra interest): it views it and leaves.
        """
        rng, catalog, cid = self.rng, self.catalog, customer.id
        sampler = self.samplers[customer.segment]
        session_id = self.mint.next("ses")
        drafts: list[Draft] = []
        views = poisson(rng, customer.views_per_session)
        searches = poisson(rng, customer.searches_per_session)
        if forced is not None and not buying:
            return [click(t + _gap(rng), cid, session_id, "view", catalog, forced)]
        viewed: list[str] = []
        for step in range(views + searches):
            t += _gap(rng)
            if rng.random() * (views + searches - step) < searches:
                searches -= 1
                query = rng.choice(catalog.queries[catalog.category[sampler.draw(rng)]])
                drafts.append(Draft(t, "clicks", cid, {
                    "customer_id": cid, "session_id": session_id, "action": "search", "query": query,
                }))
            else:
                sku = sampler.draw(rng)
                viewed.append(sku)
                drafts.append(click(t, cid, session_id, "view", catalog, sku))
        if buying:
            lines = self.basket(customer, forced)
            for sku, _ in lines:
                if sku not in viewed:
                    t += _gap(rng)
                    drafts.append(click(t, cid, session_id, "view", catalog, sku))
                t += _gap(rng)
                drafts.append(click(t, cid, session_id, "add_to_cart", catalog, sku))
            drafts.extend(self._checkout(customer, t + 20 + rng.expovariate(1 / 60), lines))
            return drafts
        if rng.random() < customer.abandon_prob:
            carted = viewed[-2:] if viewed and rng.random() < 0.8 else [sampler.draw(rng)]
            for sku in carted:
                t += _gap(rng)
                drafts.append(click(t, cid, session_id, "add_to_cart", catalog, sku))
            if rng.random() < 0.25:
                drafts.append(click(t + _gap(rng), cid, session_id, "remove_from_cart", catalog, carted[0]))
        return drafts

    def _checkout(self, customer: Customer, t: float, lines: list[tuple[str, int]]) -> list[Draft]:
        rng = self.rng
        order_id = self.mint.next("ord")
        channel = "app" if rng.random() < customer.app_share else "web"
        placed = order(t, order_id, customer.id, lines, self.catalog, customer.home, channel)
        if customer.orders == 0:
            self.buyers.append(customer)
        customer.orders += 1
        customer.spend += placed.value["total"]
        travelling = rng.random() < TRAVEL_PROB
        ip_country = rng.choice([c for c in TRAVEL_COUNTRIES if c != customer.home]) if travelling else customer.home
        device = self._device(customer, NEW_DEVICE_PROB_TRAVELLING if travelling else NEW_DEVICE_PROB)
        card = self._card(customer, NEW_CARD_PROB_TRAVELLING if travelling else NEW_CARD_PROB)
        method = rng.choice(list(METHODS)) if rng.random() < OTHER_METHOD_PROB else customer.method
        status = self._statuses.draw(rng)
        t += 2 + rng.random() * 13
        attempts = [payment(
            t, self.mint.next("pay"), order_id, customer.id, placed.value["total"], method=method, card=card,
            device=device, ip_country=ip_country, billing_country=customer.home, status=status,
        )]
        if status in ("declined", "failed") and rng.random() < RETRY_PROB:
            retry_card = self._card(customer, 0.5) if len(customer.cards) < 2 else rng.choice(
                [c for c in customer.cards if c != card])
            attempts.append(payment(
                t + 20 + rng.random() * 70, self.mint.next("pay"), order_id, customer.id, placed.value["total"],
                method="card", card=retry_card, device=device, ip_country=ip_country,
                billing_country=customer.home, status="captured",
            ))
        return [placed, *attempts]

    def _card(self, customer: Customer, new_prob: float) -> str:
        """One of the customer's cards, or (with ``new_prob``) a new one they keep."""
        if self.rng.random() < new_prob:
            customer.cards = [*customer.cards[-(MAX_CARDS - 1):], instrument_id(self.rng, "card")]
            return customer.cards[-1]
        return self.rng.choice(customer.cards)

    def _device(self, customer: Customer, new_prob: float) -> str:
        """One of the customer's devices, or (with ``new_prob``) a new one they keep."""
        if self.rng.random() < new_prob:
            customer.devices = [*customer.devices[-(MAX_DEVICES - 1):], instrument_id(self.rng, "dev")]
            return customer.devices[-1]
        return self.rng.choice(customer.devices)
