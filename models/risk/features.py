"""Per-customer payment history and the risk features computed from it.

The stream keeps one :class:`PaymentHistory` per customer (its partition key)
and folds every record of that customer into it: payments feed the amount,
velocity and known-instrument state; clicks and orders only move the account's
first-seen time and the browsing count. For each payment it asks
:meth:`PaymentHistory.features` *before* :meth:`PaymentHistory.update`, so a
payment never sees itself.

Features (all floats, names as listed in :data:`FEATURE_NAMES`, plus one
``method_<name>`` indicator per payment method):

- ``amount_z`` — log amount against this customer's last 32 amounts, in robust
  standard deviations (median / 1.4826·MAD, at least 0.25 in log units), clipped
  to ±10; 0 until 3 earlier payments exist.
- ``log_amount`` — natural log of the amount (1 + amount).
- ``first_payment`` — 1 when the customer has no earlier payment.
- ``velocity_1m`` / ``velocity_1h`` — this customer's earlier payments in the
  60 s / 3600 s before this one; ``card_velocity_*`` and ``device_velocity_*``
  the same restricted to this payment's card fingerprint / device.
- ``cards_1h`` — distinct card fingerprints in the last hour, this one included.
- ``new_card`` / ``new_device`` / ``new_ip_country`` — 1 when the customer has paid
  before and this card / device / IP country is not among the ones remembered.
- ``country_mismatch`` — 1 when both countries are sent and IP ≠ billing country.
- ``account_age_days`` — days since the customer's first event of any kind
  (capped at 365).
- ``failed_1h`` — earlier payments in the last hour with status declined/failed.
- ``clicks_1h`` — the customer's clicks in the hour before the payment.
- ``hour_sin`` / ``hour_cos`` — time of day (UTC) on the unit circle.
- ``shop_<name>`` — each signal the shop sent in the payment's optional
  ``features`` object (its own fraud stack's scores, say), as sent.

Event time throughout. Records of one customer may arrive out of order: windows
count the remembered payments whose ``ts`` falls in ``[ts - window, ts)`` — a late
payment is scored against what happened before it, not after. Payments older
than one hour before the newest one seen are forgotten, so a payment arriving
more than an hour late sees empty velocity windows. A payment id already in the
recent window is not folded twice.

Cross-customer signals (one card used by many customers, fraud rate per IP
country) are not computed: they need state keyed by card or country, i.e. a
repartition of payments by that key, which the customer-partitioned stream does
not do. They are deliberately left out rather than approximated per customer.

Memory per customer is bounded by constants: 32 amounts, 64 recent payments,
64 recent clicks, 16 remembered cards, devices and IP countries each, and 16
alert entries. A customer who never paid holds no payment lists at all (they
are created with the first payment or alert), and click times are unboxed.

>>> history = PaymentHistory()
>>> for i in range(5):
...     history.update({"payment_id": f"p{i}", "ts": 1_000.0 + 600 * i, "amount": 20.0,
...                     "method": "card", "card_fingerprint": "card-1"})
>>> x = history.features({"payment_id": "p9", "ts": 4_000.0, "amount": 800.0,
...                       "method": "card", "card_fingerprint": "card-2"})
>>> round(x["amount_z"], 1), x["new_card"], x["velocity_1h"], x["method_card"]
(10.0, 1.0, 5.0, 1.0)
>>> feature_reason("amount_z", x)
"amount 10.0σ above customer's usual"
"""

from __future__ import annotations

import bisect
import math
from array import array
from statistics import median
from typing import Any, Self

from models.base import check_state_tag

AMOUNT_WINDOW = 32
RECENT_PAYMENTS = 64
RECENT_CLICKS = 64
KNOWN_INSTRUMENTS = 16
ALERT_LOG = 16
HOUR = 3600.0
MINUTE = 60.0
DAY = 86400.0
MIN_AMOUNT_SIGMA = 0.25
MAX_ABS_Z = 10.0
MAX_ACCOUNT_AGE_DAYS = 365.0
FAILED_STATUSES = frozenset({"declined", "failed"})

#: The fixed features every payment gets (``method_<name>`` indicators come on top).
FEATURE_NAMES: tuple[str, ...] = (
    "amount_z",
    "log_amount",
    "first_payment",
    "velocity_1m",
    "velocity_1h",
    "card_velocity_1m",
    "card_velocity_1h",
    "device_velocity_1m",
    "device_velocity_1h",
    "cards_1h",
    "new_card",
    "new_device",
    "new_ip_country",
    "country_mismatch",
    "account_age_days",
    "failed_1h",
    "clicks_1h",
    "hour_sin",
    "hour_cos",
)

#: Features that can only raise risk: the scorer keeps their weights >= 0.
RISK_INDICATORS: frozenset[str] = frozenset({
    "velocity_1m", "velocity_1h", "card_velocity_1m", "card_velocity_1h", "device_velocity_1m",
    "device_velocity_1h", "cards_1h", "new_card", "new_device", "new_ip_country", "country_mismatch", "failed_1h",
})

METHOD_PREFIX = "method_"
#: Prefix of the shop-supplied signals (a payment's ``features`` object on the wire).
SHOP_PREFIX = "shop_"

#: Features explained together under one reason.
FEATURE_GROUPS: dict[str, str] = {"hour_sin": "time_of_day", "hour_cos": "time_of_day"}


def method_feature(method: str) -> str:
    """The indicator feature name for a payment method, e.g. ``method_card``."""
    return METHOD_PREFIX + "".join(c if c.isalnum() else "_" for c in method.lower())


def feature_reason(name: str, features: dict[str, float]) -> str:
    """Readable text for one feature (or feature group) of a payment."""
    value = features.get(name, 0.0)
    if name == "time_of_day":
        angle = math.atan2(features.get("hour_sin", 0.0), features.get("hour_cos", 1.0))
        minutes = round((angle / (2 * math.pi) * 24 % 24) * 60) % (24 * 60)
        return f"paid at {minutes // 60:02d}:{minutes % 60:02d} UTC"
    if name.startswith(METHOD_PREFIX):
        return f"paid by {name.removeprefix(METHOD_PREFIX)}"
    if name.startswith(SHOP_PREFIX):
        return f"shop signal {name.removeprefix(SHOP_PREFIX)} = {value:.4g}"
    if name == "amount_z":
        side = "above" if value >= 0 else "below"
        return f"amount {abs(value):.1f}σ {side} customer's usual"
    if name == "clicks_1h" and value == 0:
        return "no browsing in the hour before paying"
    template = _REASON_TEXT.get(name)
    if template is None:
        return f"{name} = {value:g}"
    return template.format(value=value, amount=math.expm1(features.get("log_amount", 0.0)))


_REASON_TEXT: dict[str, str] = {
    "log_amount": "amount {amount:,.2f}",
    "first_payment": "first payment of this customer",
    "velocity_1m": "{value:.0f} payments by this customer in the last minute",
    "velocity_1h": "{value:.0f} payments by this customer in the last hour",
    "card_velocity_1m": "{value:.0f} payments with this card in the last minute",
    "card_velocity_1h": "{value:.0f} payments with this card in the last hour",
    "device_velocity_1m": "{value:.0f} payments from this device in the last minute",
    "device_velocity_1h": "{value:.0f} payments from this device in the last hour",
    "cards_1h": "{value:.0f} different cards in the last hour",
    "new_card": "card not seen before for this customer",
    "new_device": "device not seen before for this customer",
    "new_ip_country": "IP country not seen before for this customer",
    "country_mismatch": "IP country differs from billing country",
    "account_age_days": "account {value:.1f} days old",
    "failed_1h": "{value:.0f} failed or declined attempts in the last hour",
    "clicks_1h": "{value:.0f} clicks in the hour before paying",
}


class PaymentHistory:
    """One customer's bounded payment history, folded from records in event time."""

    STATE_MODEL = "PaymentHistory"
    STATE_VERSION = 1

    __slots__ = ("first_seen", "latest_ts", "payments_seen", "log_amounts", "recent", "clicks", "cards", "devices",
                 "ip_countries", "alerts")

    def __init__(self) -> None:
        self.first_seen: float | None = None
        self.latest_ts: float | None = None
        self.payments_seen = 0
        # Payment lists start as the shared empty tuple: most customers never pay (see _paying).
        self.log_amounts: list[float] | tuple = ()
        #: Recent payments sorted by ts: [ts, payment_id, card, device, failed].
        self.recent: list[list[Any]] | tuple = ()
        #: Click times, sorted.
        self.clicks = array("d")
        self.cards: list[str] | tuple = ()
        self.devices: list[str] | tuple = ()
        self.ip_countries: list[str] | tuple = ()
        #: Alerts raised for this customer: [payment_id, ts], oldest first.
        self.alerts: list[list[Any]] | tuple = ()

    def features(self, payment: dict[str, Any]) -> dict[str, float]:
        """Risk features of ``payment`` against the history so far (call before :meth:`update`)."""
        ts = float(payment["ts"])
        amount = float(payment["amount"])
        card = payment.get("card_fingerprint")
        device = payment.get("device_id")
        ip_country = payment.get("ip_country")
        billing_country = payment.get("billing_country")
        has_history = self.payments_seen > 0
        last_minute = [p for p in self.recent if ts - MINUTE <= p[0] < ts]
        last_hour = [p for p in self.recent if ts - HOUR <= p[0] < ts]
        cards_in_hour = {p[2] for p in last_hour if p[2] is not None} | ({card} if card else set())
        hour = (ts % DAY) / HOUR
        first_seen = ts if self.first_seen is None else min(self.first_seen, ts)
        features = {
            "amount_z": self._amount_z(math.log1p(amount)),
            "log_amount": math.log1p(amount),
            "first_payment": 0.0 if has_history else 1.0,
            "velocity_1m": float(len(last_minute)),
            "velocity_1h": float(len(last_hour)),
            "card_velocity_1m": _count_with(last_minute, 2, card),
            "card_velocity_1h": _count_with(last_hour, 2, card),
            "device_velocity_1m": _count_with(last_minute, 3, device),
            "device_velocity_1h": _count_with(last_hour, 3, device),
            "cards_1h": float(len(cards_in_hour)),
            "new_card": _is_new(has_history, card, self.cards),
            "new_device": _is_new(has_history, device, self.devices),
            "new_ip_country": _is_new(has_history, ip_country, self.ip_countries),
            "country_mismatch": float(bool(ip_country and billing_country and ip_country != billing_country)),
            "account_age_days": min((ts - first_seen) / DAY, MAX_ACCOUNT_AGE_DAYS),
            "failed_1h": float(sum(1 for p in last_hour if p[4])),
            "clicks_1h": float(sum(1 for c in self.clicks if ts - HOUR <= c < ts)),
            "hour_sin": math.sin(2 * math.pi * hour / 24),
            "hour_cos": math.cos(2 * math.pi * hour / 24),
        }
        features[method_feature(payment["method"])] = 1.0
        for name, value in payment.get("features", {}).items():
            features[SHOP_PREFIX + name] = float(value)
        return features

    def update(self, record: dict[str, Any]) -> None:
        """Fold one record of this customer: a payment, a click or an order."""
        ts = float(record["ts"])
        self.first_seen = ts if self.first_seen is None else min(self.first_seen, ts)
        self.latest_ts = ts if self.latest_ts is None else max(self.latest_ts, ts)
        if "payment_id" in record:
            self._update_payment(record, ts)
        elif "session_id" in record:
            bisect.insort(self.clicks, ts)
        self._forget_before(self.latest_ts - HOUR)

    def admit_alert(self, payment_id: str, ts: float, max_per_hour: int = 3) -> bool:
        """Record an alert for ``payment_id`` unless it is a repeat or the hourly limit is reached."""
        if any(entry[0] == payment_id for entry in self.alerts):
            return False
        if sum(1 for _, at in self.alerts if ts - HOUR < at <= ts) >= max_per_hour:
            return False
        if not self.alerts:
            self.alerts = []
        self.alerts.append([payment_id, ts])
        del self.alerts[:-ALERT_LOG]
        return True

    def state_dict(self) -> dict[str, Any]:
        """Plain-data checkpoint of this customer's history."""
        return {
            "model": self.STATE_MODEL,
            "version": self.STATE_VERSION,
            "first_seen": self.first_seen,
            "latest_ts": self.latest_ts,
            "payments_seen": self.payments_seen,
            "log_amounts": list(self.log_amounts),
            "recent": [list(p) for p in self.recent],
            "clicks": list(self.clicks),
            "cards": list(self.cards),
            "devices": list(self.devices),
            "ip_countries": list(self.ip_countries),
            "alerts": [list(a) for a in self.alerts],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """Rebuild a history from :meth:`state_dict` output."""
        check_state_tag(state, cls.STATE_MODEL, cls.STATE_VERSION)
        history = cls()
        history.first_seen = state["first_seen"]
        history.latest_ts = state["latest_ts"]
        history.payments_seen = state["payments_seen"]
        if state["payments_seen"]:
            history._paying()
            history.log_amounts.extend(state["log_amounts"])
            history.recent.extend(list(p) for p in state["recent"])
            history.cards.extend(state["cards"])
            history.devices.extend(state["devices"])
            history.ip_countries.extend(state["ip_countries"])
        history.clicks = array("d", state["clicks"])
        if state["alerts"]:
            history.alerts = [list(a) for a in state["alerts"]]
        return history

    def _paying(self) -> None:
        """Give a customer its own payment lists (at the first payment)."""
        self.log_amounts, self.recent, self.cards, self.devices, self.ip_countries = [], [], [], [], []

    def _amount_z(self, log_amount: float) -> float:
        if len(self.log_amounts) < 3:
            return 0.0
        centre = median(self.log_amounts)
        spread = 1.4826 * median(abs(v - centre) for v in self.log_amounts)
        z = (log_amount - centre) / max(spread, MIN_AMOUNT_SIGMA)
        return max(-MAX_ABS_Z, min(MAX_ABS_Z, z))

    def _update_payment(self, payment: dict[str, Any], ts: float) -> None:
        payment_id = payment["payment_id"]
        if any(p[1] == payment_id for p in self.recent):
            return
        card = payment.get("card_fingerprint")
        device = payment.get("device_id")
        if not self.payments_seen:
            self._paying()
        self.payments_seen += 1
        self.log_amounts.append(math.log1p(float(payment["amount"])))
        del self.log_amounts[:-AMOUNT_WINDOW]
        failed = payment.get("status") in FAILED_STATUSES
        bisect.insort(self.recent, [ts, payment_id, card, device, failed], key=lambda p: p[0])
        _remember(self.cards, card)
        _remember(self.devices, device)
        _remember(self.ip_countries, payment.get("ip_country"))

    def _forget_before(self, cutoff: float) -> None:
        """Drop payments and clicks older than ``cutoff`` and beyond the caps (both lists are sorted)."""
        if self.recent:
            stale = bisect.bisect_left(self.recent, cutoff, key=lambda p: p[0])
            del self.recent[: max(stale, len(self.recent) - RECENT_PAYMENTS)]
        del self.clicks[: max(bisect.bisect_left(self.clicks, cutoff), len(self.clicks) - RECENT_CLICKS)]


def _count_with(payments: list[list[Any]], column: int, value: str | None) -> float:
    if value is None:
        return 0.0
    return float(sum(1 for p in payments if p[column] == value))


def _is_new(has_history: bool, value: str | None, known: list[str]) -> float:
    return float(has_history and value is not None and value not in known)


def _remember(known: list[str], value: str | None) -> None:
    """Move ``value`` to the most-recent end of a bounded least-recently-used list."""
    if value is None:
        return
    if value in known:
        known.remove(value)
    known.append(value)
    del known[:-KNOWN_INSTRUMENTS]
