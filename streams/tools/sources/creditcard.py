"""Replay card-fraud CSVs in the public ULB credit-card layout as payments with shop signals and late labels.

The layout (``Time, V1, ..., V28, Amount, Class``) is that of the ULB/Worldline
"Credit Card Fraud Detection" set: one card payment per row, ``Time`` in
seconds from the first payment, ``V1``-``V28`` anonymised numeric signals (the
kind a shop's own fraud stack produces), ``Amount`` in EUR and ``Class`` 1 for
fraud. Each row becomes one ``payments`` event and one ``labels`` event, as
wire dicts that validate against :class:`~streams.pipeline.events.Payment` and
:class:`~streams.pipeline.events.Label`:

============================  =============================================================
wire field                    from
============================  =============================================================
``payment_id``                ``cc-{n:06d}`` (``n``: 0-based data row); ``order_id``
                              ``cc-order-{n:06d}``; ``event_id`` ``cc-pay-``/``cc-label-``
``ts`` (payment)              ``start + Time`` seconds
``customer_id``               ``cc-customer-{n:06d}``: the set names no card holder, so each
                              payment is its own customer (history features stay at their
                              first-payment values)
``amount``                    ``Amount`` (0 is a card verification, and a valid payment)
``currency`` / ``method``     ``EUR`` / ``card``
``features``                  ``{"V1": ..., ..., "V28": ...}``: every column named ``V<n>``
``ts`` (label)                payment ``ts`` + ``label_delay_seconds``
``is_fraud`` / ``source``     ``Class``; ``chargeback`` for fraud, ``review`` for legit
============================  =============================================================

Rows are sent in ``Time`` order (file order among equal times).

>>> import io
>>> csv_text = io.StringIO('"Time","V1","V2","Amount","Class"\\n0,-1.36,0.07,149.62,"0"\\n4,1.19,0.26,0,"1"\\n')
>>> replay = read_creditcard(csv_text, label_delay_seconds=3600)
>>> [(p["payment_id"], p["ts"], p["amount"], p["features"]) for p in replay.payments]
[('cc-000000', '2026-11-01T00:00:00.000Z', 149.62, {'V1': -1.36, 'V2': 0.07}), ('cc-000001', '2026-11-01T00:00:04.000Z', 0.0, {'V1': 1.19, 'V2': 0.26})]
>>> replay.labels[1]["ts"], replay.labels[1]["is_fraud"]
('2026-11-01T01:00:04.000Z', True)
"""

from __future__ import annotations

import csv
import re
from datetime import datetime
from pathlib import Path
from typing import IO

from streams.tools.sources.paysim import DEFAULT_START, PaySimReplay, _iso

#: Columns every file of the layout has (besides its ``V<n>`` signals).
CREDITCARD_COLUMNS = ("Time", "Amount", "Class")
_SIGNAL = re.compile(r"^V\d+$")

#: Payments and labels in event-time order: the same shape as PaySim's.
CreditCardReplay = PaySimReplay


def read_creditcard(
    source: str | Path | IO[str], label_delay_seconds: float = 86400.0, start: str = DEFAULT_START
) -> CreditCardReplay:
    """Read a ULB-layout CSV (path or text stream) into payments and labels ``label_delay_seconds`` later."""
    if isinstance(source, (str, Path)):
        with open(source, newline="", encoding="utf-8") as handle:
            return _read(csv.DictReader(handle), label_delay_seconds, start)
    return _read(csv.DictReader(source), label_delay_seconds, start)


def _read(rows: csv.DictReader, label_delay_seconds: float, start: str) -> CreditCardReplay:
    origin = datetime.fromisoformat(start.replace("Z", "+00:00")).timestamp()
    signals = [name for name in rows.fieldnames or () if _SIGNAL.match(name)]
    payments, labels = [], []
    for n, row in sorted(enumerate(rows), key=lambda numbered: float(numbered[1]["Time"])):
        ts = origin + float(row["Time"])
        is_fraud = float(row["Class"]) == 1.0
        payments.append({
            "event_id": f"cc-pay-{n:06d}",
            "payment_id": f"cc-{n:06d}",
            "order_id": f"cc-order-{n:06d}",
            "ts": _iso(ts),
            "customer_id": f"cc-customer-{n:06d}",
            "amount": float(row["Amount"]),
            "currency": "EUR",
            "method": "card",
            "features": {name: float(row[name]) for name in signals},
        })
        labels.append({
            "event_id": f"cc-label-{n:06d}",
            "payment_id": f"cc-{n:06d}",
            "ts": _iso(ts + label_delay_seconds),
            "is_fraud": is_fraud,
            "source": "chargeback" if is_fraud else "review",
        })
    return CreditCardReplay(payments, labels)
