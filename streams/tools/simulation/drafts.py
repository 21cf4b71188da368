"""Events before they are stamped: what the shoppers and fraudsters hand to the simulator."""

from __future__ import annotations

from typing import Any, NamedTuple

from streams.tools.simulation.catalog import Catalog
from streams.tools.simulation.draws import money


class Draft(NamedTuple):
    """An event to emit at ``t`` (epoch seconds); the simulator adds ``event_id`` and ``ts``.

    ``fraud`` names the fraud pattern of a payment draft, ``None`` for everything else.
    """

    t: float
    topic: str
    key: str
    value: dict[str, Any]
    fraud: str | None = None


class IdMint:
    """Run-unique ids such as ``ord-7-42``: a kind, the seed, and a counter per kind.

    >>> mint = IdMint(7)
    >>> mint.next("ord"), mint.next("ord"), mint.next("pay")
    ('ord-7-1', 'ord-7-2', 'pay-7-1')
    """

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._counts: dict[str, int] = {}

    def next(self, kind: str) -> str:
        """The next id of ``kind``."""
        count = self._counts.get(kind, 0) + 1
        self._counts[kind] = count
        return f"{kind}-{self._seed}-{count}"


def click(t: float, customer_id: str, session_id: str, action: str, catalog: Catalog, sku: str) -> Draft:
    """A view / add_to_cart / remove_from_cart of ``sku``."""
    return Draft(t, "clicks", customer_id, {
        "customer_id": customer_id, "session_id": session_id, "action": action,
        "sku": sku, "category": catalog.category[sku], "price": catalog.price[sku],
    })


def order(
    t: float, order_id: str, customer_id: str, lines: list[tuple[str, int]], catalog: Catalog,
    country: str, channel: str,
) -> Draft:
    """An order of ``(sku, quantity)`` lines at catalog prices, in euros, with its total."""
    wire_lines = [
        {"sku": sku, "quantity": quantity, "unit_price": catalog.price[sku], "category": catalog.category[sku]}
        for sku, quantity in lines
    ]
    total = money(sum(quantity * catalog.price[sku] for sku, quantity in lines))
    return Draft(t, "orders", customer_id, {
        "order_id": order_id, "customer_id": customer_id, "currency": "EUR",
        "country": country, "channel": channel, "lines": wire_lines, "total": total,
    })


def payment(
    t: float, payment_id: str, order_id: str, customer_id: str, amount: float, *, method: str,
    card: str, device: str, ip_country: str, billing_country: str, status: str, fraud: str | None = None,
) -> Draft:
    """A payment attempt in euros."""
    return Draft(t, "payments", customer_id, {
        "payment_id": payment_id, "order_id": order_id, "customer_id": customer_id,
        "amount": amount, "currency": "EUR", "method": method, "card_fingerprint": card,
        "device_id": device, "ip_country": ip_country, "billing_country": billing_country,
        "status": status,
    }, fraud)
