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

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

Id = Annotated[str, Field(min_length=1, max_length=128)]
ShortText = Annotated[str, Field(max_length=256)]
Money = Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False)]
PositiveMoney = Annotated[float, Field(gt=0, le=1e9, allow_inf_nan=False)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
Country = Annotated[str, Field(pattern=r"^[A-Z]{2}$")]

EARLIEST = datetime(2000, 1, 1).timestamp()
LATEST = datetime(2100, 1, 1).timestamp()


class WireEvent(BaseModel):
    """Fields and rules every input event shares."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    #: The topic this event type is read from.
    topic: ClassVar[str]
    #: Value an optional ``type`` field must carry when a producer sends one.
    kind: ClassVar[str]

    event_id: Id
    ts: AwareDatetime
    type: str | None = None

    @field_validator("ts")
    @classmethod
    def _ts_in_range(cls, value: datetime) -> datetime:
        if not EARLIEST <= value.timestamp() < LATEST:
            raise ValueError("timestamp outside 2000-01-01 .. 2100-01-01")
        return value

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str | None) -> str | None:
        if value is not None and value != cls.kind:
            raise ValueError(f"unknown event type {value!r} on topic {cls.topic!r} (expected {cls.kind!r})")
        return value

    def to_record(self) -> dict[str, Any]:
        """The internal record: wire names, ``ts`` in epoch seconds, no ``None`` optionals."""
        record = self.model_dump(exclude_none=True, exclude={"type"})
        record["ts"] = self.ts.timestamp()
        return record


class Click(WireEvent):
    """A storefront interaction within a session."""

    topic: ClassVar[str] = "clicks"
    kind: ClassVar[str] = "click"

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
    kind: ClassVar[str] = "order"

    order_id: Id
    customer_id: Id
    lines: Annotated[list[OrderLine], Field(min_length=1, max_length=500)]
    currency: Currency
    country: Country | None = None
    channel: ShortText | None = None
    total: Money | None = None

    def total_value(self) -> float:
        """The order's value: ``total`` when sent, else the sum of its lines."""
        if self.total is not None:
            return self.total
        return sum(line.quantity * line.unit_price for line in self.lines)


class Payment(WireEvent):
    """A payment attempt for an order."""

    topic: ClassVar[str] = "payments"
    kind: ClassVar[str] = "payment"

    payment_id: Id
    order_id: Id
    customer_id: Id
    amount: PositiveMoney
    currency: Currency
    method: Annotated[str, Field(min_length=1, max_length=32)]
    card_fingerprint: Id | None = None
    device_id: Id | None = None
    ip_country: Country | None = None
    billing_country: Country | None = None
    status: Literal["authorized", "captured", "declined", "failed"] | None = None


class Label(WireEvent):
    """A fraud outcome for a payment, arriving late (chargeback or review)."""

    topic: ClassVar[str] = "labels"
    kind: ClassVar[str] = "label"

    payment_id: Id
    is_fraud: bool
    source: Literal["chargeback", "review"] | None = None


#: Input topic name -> the model that validates it.
EVENT_TYPES: dict[str, type[WireEvent]] = {
    model.topic: model for model in (Click, Order, Payment, Label)
}
