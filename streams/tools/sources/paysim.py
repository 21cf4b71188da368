"""Replay the labelled PaySim sample as Kairos payments and late fraud labels.

PaySim (``paysim_sample.csv``: step, type, amount, nameOrig, oldbalanceOrg,
newbalanceOrig, nameDest, oldbalanceDest, newbalanceDest, isFraud,
isFlaggedFraud) is a simulated mobile-money log. Each row becomes one
``payments`` event and one ``labels`` event, as wire dicts that validate against
:class:`~streams.pipeline.events.Payment` and :class:`~streams.pipeline.events.Label`.

Mapping, row by row (rows sorted by ``step``, file order within a step; ``n`` is
the row's 0-based line number among the data rows):

============================  =============================================================
wire field                    from
============================  =============================================================
``payment_id``                ``ps-{n:06d}``; ``order_id`` ``ps-order-{n:06d}``
``event_id``                  ``ps-pay-{n:06d}`` (payment), ``ps-label-{n:06d}`` (label)
``ts`` (payment)              ``start + (step - 1) h + (i + 0.5) / k h``: the ``k`` rows of a
                              step are spread evenly over its hour (``i`` = position in step)
``customer_id``               ``nameOrig`` (the paying account)
``card_fingerprint``          ``nameOrig`` too: the account is the payment instrument
``amount``                    ``amount`` (rows with amount 0 are skipped, as when the wire needed
                              > 0, so the PaySim figures stay comparable)
``currency``                  ``XXX`` (ISO 4217 "no currency": PaySim's unit is unspecified)
``method``                    ``type`` lower-cased: ``cash_in``, ``cash_out``, ``debit``,
                              ``payment``, ``transfer``
``ts`` (label)                payment ``ts`` + ``label_delay_steps`` hours
``is_fraud`` / ``source``     ``isFraud``; ``chargeback`` for fraud, ``review`` for legit
============================  =============================================================

Dropped, because the wire has no field for them and Kairos only sees the wire:
the balances (``oldbalanceOrg``, ``newbalanceOrig``, ``oldbalanceDest``,
``newbalanceDest``), the payee ``nameDest`` and ``isFlaggedFraud``. The balances
carry PaySim's strongest fraud signal (fraud empties the account), so models on
the wire fields see less than models fitted on the raw CSV. No ``device_id``,
``ip_country``, ``billing_country`` or ``status`` exist in PaySim. Nearly every
``nameOrig`` occurs once, so per-customer history features stay at their
first-payment values; what remains is the amount, the method and the time of day.
The sample is class-rebalanced (1,392 frauds in 51,392 rows), so rates are not
realistic.

>>> import io
>>> csv_text = io.StringIO(
...     "step,type,amount,nameOrig,oldbalanceOrg,newbalanceOrig,nameDest,oldbalanceDest,"
...     "newbalanceDest,isFraud,isFlaggedFraud\\n"
...     "2,TRANSFER,181.0,C1305486145,181.0,0.0,C553264065,0.0,0.0,1.0,0.0\\n"
...     "1,PAYMENT,9839.64,C1231006815,170136.0,160296.36,M1979787155,0.0,0.0,0.0,0.0\\n")
>>> replay = read_paysim(csv_text, label_delay_steps=24)
>>> [(p["payment_id"], p["ts"], p["method"]) for p in replay.payments]
[('ps-000001', '2026-11-01T00:30:00.000Z', 'payment'), ('ps-000000', '2026-11-01T01:30:00.000Z', 'transfer')]
>>> replay.labels[1]["ts"], replay.labels[1]["is_fraud"]
('2026-11-02T01:30:00.000Z', True)
"""

from __future__ import annotations

import csv
import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

HOUR = 3600.0
DEFAULT_START = "2026-11-01T00:00:00Z"


@dataclass(frozen=True)
class PaySimReplay:
    """PaySim rows as wire payments and labels, each list in event-time order."""

    payments: list[dict[str, Any]]
    labels: list[dict[str, Any]]

    def events(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """``(topic, key, value)`` merged in event-time order; key = customer id or payment id."""
        payments = (("payments", p["customer_id"], p) for p in self.payments)
        labels = (("labels", label["payment_id"], label) for label in self.labels)
        yield from heapq.merge(payments, labels, key=lambda event: event[2]["ts"])


def read_paysim(
    source: str | Path | IO[str], label_delay_steps: float = 24.0, start: str = DEFAULT_START
) -> PaySimReplay:
    """Read a PaySim CSV (path or text stream) into payments and labels delayed by ``label_delay_steps`` hours."""
    if isinstance(source, (str, Path)):
        with open(source, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    else:
        rows = list(csv.DictReader(source))
    origin = datetime.fromisoformat(start.replace("Z", "+00:00")).timestamp()
    numbered = sorted(
        ((int(float(row["step"])), n, row) for n, row in enumerate(rows) if float(row["amount"]) > 0),
        key=lambda item: (item[0], item[1]),
    )
    per_step: dict[int, int] = {}
    for step, _, _ in numbered:
        per_step[step] = per_step.get(step, 0) + 1
    payments, labels = [], []
    position = 0
    for index, (step, n, row) in enumerate(numbered):
        position = position + 1 if index and numbered[index - 1][0] == step else 0
        ts = origin + (step - 1) * HOUR + (position + 0.5) / per_step[step] * HOUR
        is_fraud = float(row["isFraud"]) == 1.0
        payments.append({
            "event_id": f"ps-pay-{n:06d}",
            "payment_id": f"ps-{n:06d}",
            "order_id": f"ps-order-{n:06d}",
            "ts": _iso(ts),
            "customer_id": row["nameOrig"],
            "card_fingerprint": row["nameOrig"],
            "amount": float(row["amount"]),
            "currency": "XXX",
            "method": row["type"].lower(),
        })
        labels.append({
            "event_id": f"ps-label-{n:06d}",
            "payment_id": f"ps-{n:06d}",
            "ts": _iso(ts + label_delay_steps * HOUR),
            "is_fraud": is_fraud,
            "source": "chargeback" if is_fraud else "review",
        })
    return PaySimReplay(payments, labels)


def _iso(ts: float) -> str:
    """ISO 8601 in UTC with milliseconds and a ``Z``."""
    moment = datetime.fromtimestamp(round(ts, 3), tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
