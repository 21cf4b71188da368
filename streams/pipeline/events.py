"""The wire contract: one pydantic model per input topic.

Shops integrate against these payloads, so they are public API. Every model is
strict about types (a number sent as a string is refused), ranges and sizes,
ignores extra fields, and needs a timestamp with a zone.

Inside Kairos an accepted event travels as a *record*: the same field names as
on the wire, ``ts`` as float seconds since the epoch, absent optionals left out.

>>> order = Order.model_validate_json(
...     b'{"event_id": "e1", "order_id": "o1", "ts": "2026-11-22T06:01:17.123Z",'
...     b' "customer_id": "c1", "currency": "EUR",'
...     b' "lines": [{"sku": "A", "quantity": 2, "unit_price": 9.5}]}')
>>> order.total_value()
19.0
>>> order.to_record()["ts"]
1795327277.123
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

#: Identifiers: 1-128 characters, no control characters.
Id = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]
ShortText = Annotated[str, Field(max_length=256)]
Money = Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
Country = Annotated[str, Field(pattern=r"^[A-Z]{2}$")]

#: At most this many shop-supplied signals on one payment.
MAX_SHOP_SIGNALS = 64
#: A shop signal's name: 1-64 letters, digits or underscores.
SignalName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_]+$")]
#: A shop signal's value: a finite number.
SignalValue = Annotated[float, Field(allow_inf_nan=False, ge=-1e12, le=1e12)]

#: Accepted event times: 2000-01-01 <= ts < 2100-01-01 (UTC).
Timestamp = Annotated[
    AwareDatetime,
    Field(ge=datetime(2000, 1, 1, tzinfo=timezone.utc), lt=datetime(2100, 1, 1, tzinfo=timezone.utc)),
]


class WireEvent(BaseModel):
    """Fields and rules every input event shares."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    #: The topic this event type is read from.
    topic: ClassVar[str]
    #: An optional ``type`` field, when sent, must name this event type.
    type: str | None = None

    event_id: Id
    ts: Timestamp

    def to_record(self) -> dict[str, Any]:
        """The internal record: wire names, ``ts`` in epoch seconds, no ``None`` optionals."""
        record = {name: value for name, value in self.__dict__.items() if value is not None}
        record["ts"] = self.ts.timestamp()
        record.pop("type", None)
        return record


class Click(WireEvent):
    """A storefront interaction within a session."""

    topic: ClassVar[str] = "clicks"

    type: Literal["click"] | None = None
    customer_id: Id
    session_id: Id
    action: Literal["view", "search", "add_to_cart", "remove_from_cart"]
    sku: Id | None = None
    category: ShortText | None = None
    price: Money | None = None
    query: ShortText | None = None


class OrderLine(BaseModel):
    """One line of an order."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    sku: Id
    quantity: Annotated[int, Field(gt=0, le=100_000)]
    unit_price: Money
    category: ShortText | None = None


class Order(WireEvent):
    """A placed order with its lines."""

    topic: ClassVar[str] = "orders"

    type: Literal["order"] | None = None
    order_id: Id
    customer_id: Id
    lines: Annotated[list[OrderLine], Field(min_length=1, max_length=500)]
    currency: Currency
    country: Country | None = None
    channel: ShortText | None = None
    total: Money | None = None

    def to_record(self) -> dict[str, Any]:
        record = super().to_record()
        record["lines"] = [
            {name: value for name, value in line.__dict__.items() if value is not None}
            for line in self.lines
        ]
        return record

    def total_value(self) -> float:
        """The order's value: ``total`` when sent, else the sum of its lines."""
        if self.total is not None:
            return self.total
        return sum(line.quantity * line.unit_price for line in self.lines)


class Payment(WireEvent):
    """A payment attempt for an order."""

    topic: ClassVar[str] = "payments"

    type: Literal["payment"] | None = None
    payment_id: Id
    order_id: Id
    customer_id: Id
    #: Zero is a valid amount (a card verification).
    amount: Money
    currency: Currency
    method: Annotated[str, Field(min_length=1, max_length=32)]
    card_fingerprint: Id | None = None
    device_id: Id | None = None
    ip_country: Country | None = None
    billing_country: Country | None = None
    status: Literal["authorized", "captured", "declined", "failed"] | None = None
    #: Shop-supplied risk signals (e.g. its own fraud stack's scores): named finite numbers, learned by the
    #: risk scorer beside its own features.
    features: Annotated[dict[SignalName, SignalValue], Field(max_length=MAX_SHOP_SIGNALS)] | None = None


class Label(WireEvent):
    """A fraud outcome for a payment, arriving late (chargeback or review)."""

    topic: ClassVar[str] = "labels"

    type: Literal["label"] | None = None
    payment_id: Id
    is_fraud: bool
    source: Literal["chargeback", "review"] | None = None


class Inventory(WireEvent):
    """A count of a SKU's units on hand (optional topic: it turns on stock-out risk), keyed by ``sku``.

    ``on_hand`` is what the shop can sell at ``ts``, orders dated up to ``ts`` already taken out; a restock
    is a count with more units.
    """

    topic: ClassVar[str] = "inventory"

    type: Literal["inventory"] | None = None
    sku: Id
    on_hand: Annotated[int, Field(ge=0, le=1_000_000_000)]


#: Input topic name -> the model that validates it.
EVENT_TYPES: dict[str, type[WireEvent]] = {
    model.topic: model for model in (Click, Order, Payment, Label, Inventory)
}
