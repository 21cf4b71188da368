"""Read a retail transactions CSV (one row per invoice line) into wire-format ``orders`` events.

The default column mapping fits the common retail layout of the UCI "Online
Retail" data set: ``InvoiceNo, StockCode, Description, Quantity, InvoiceDate,
UnitPrice, CustomerID, Country``; :class:`RetailColumns` renames columns and
sets the date format, time zone and currency for other exports.

How rows become orders (every skipped row is counted in :class:`RetailStats`):

* Rows are grouped by invoice into one order each: ``order_id`` is the
  invoice number, ``event_id`` ``retail-{invoice}`` (so a replay of the same
  file is deduplicated downstream), ``ts`` the invoice's first row time in
  ISO 8601 with its zone. Files are read in the given order and rows must be
  in time order within them (the UCI files are); an invoice is emitted once a
  row of another invoice with a later time arrives, so orders come out in
  time order and an invoice spanning two minutes stays one order.
* Cancellations and returns are skipped: invoices starting with ``C`` and
  any line with quantity ≤ 0 (``cancelled_rows``, ``returned_rows``). Replay
  feeds what was sold; netting returns against past orders is not modelled.
* Non-product codes are dropped (``non_product_rows``): postage, manual
  adjustments, bank charges and fees — every code without a digit (``POST``,
  ``M``, ``DOT``, ``D``, ``S``, ``BANK CHARGES``, ``AMAZONFEE``, ``CRUK``,
  ``PADS``…), plus carriage ``C2`` and gift vouchers ``gift_…``.
* Rows with a negative price or an unreadable number or date are skipped
  (``invalid_rows``).
* A row without ``CustomerID`` belongs to a guest: customer id
  ``guest-{invoice}``, one guest per invoice (``guest_orders``); pass
  ``guests=False`` to skip those orders instead. ``CustomerID`` floats such
  as ``17850.0`` become ``"17850"``.
* Country names become ISO 3166 alpha-2 codes where known (``United Kingdom``
  → ``GB``, ``EIRE`` → ``IE``); others (``Channel Islands``, ``Unspecified``)
  leave the optional ``country`` out (``unknown_countries``).
* An invoice with more lines than an order may carry (500) is split into
  parts ``{invoice}/2``, ``{invoice}/3``… (``split_orders``); an invoice with
  no product line left is dropped (``empty_invoices``).

Each line carries ``sku``, ``quantity``, ``unit_price`` and the row's
``description`` (an extra field the wire keeps but does not need).

>>> import io
>>> csv_text = io.StringIO(
...     "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\\n"
...     "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom\\n"
...     "536365,POST,POSTAGE,1,2010-12-01 08:26:00,18.0,17850.0,United Kingdom\\n"
...     "C536379,D,Discount,-1,2010-12-01 09:41:00,27.5,14527.0,United Kingdom\\n"
...     "536380,22961,JAM MAKING SET PRINTED,24,2010-12-01 09:41:00,1.45,,EIRE\\n")
>>> stats = RetailStats()
>>> orders = list(read_retail_orders([csv_text], stats=stats))
>>> [(o["order_id"], o["customer_id"], o["ts"], o.get("country")) for o in orders]
[('536365', '17850', '2010-12-01T08:26:00+00:00', 'GB'), ('536380', 'guest-536380', '2010-12-01T09:41:00+00:00', 'IE')]
>>> [line["sku"] for line in orders[0]["lines"]]
['85123A']
>>> stats.cancelled_rows, stats.non_product_rows, stats.guest_orders
(1, 1, 1)
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict

#: Most lines one order may carry (the wire contract's limit).
MAX_LINES = 500
#: Stock codes that are not products: no digit at all, carriage ``C2``, gift vouchers.
NON_PRODUCT = re.compile(r"\D*|C2|gift_.*", re.IGNORECASE)
#: Country names of the UCI Online Retail data -> ISO 3166 alpha-2.
COUNTRY_CODES = {
    "Australia": "AU", "Austria": "AT", "Bahrain": "BH", "Belgium": "BE", "Brazil": "BR", "Canada": "CA",
    "Cyprus": "CY", "Czech Republic": "CZ", "Denmark": "DK", "EIRE": "IE", "Finland": "FI", "France": "FR",
    "Germany": "DE", "Greece": "GR", "Hong Kong": "HK", "Iceland": "IS", "Israel": "IL", "Italy": "IT",
    "Japan": "JP", "Lebanon": "LB", "Lithuania": "LT", "Malta": "MT", "Netherlands": "NL", "Norway": "NO",
    "Poland": "PL", "Portugal": "PT", "RSA": "ZA", "Saudi Arabia": "SA", "Singapore": "SG", "Spain": "ES",
    "Sweden": "SE", "Switzerland": "CH", "United Arab Emirates": "AE", "United Kingdom": "GB", "USA": "US",
}


class RetailColumns(BaseModel):
    """Where each field sits in the CSV, and how to read dates and money."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    invoice: str = "InvoiceNo"
    sku: str = "StockCode"
    description: str = "Description"
    quantity: str = "Quantity"
    invoice_date: str = "InvoiceDate"
    unit_price: str = "UnitPrice"
    customer: str = "CustomerID"
    country: str = "Country"
    #: ``strptime`` format of ``invoice_date`` (the UCI Excel export uses ``%m/%d/%Y %H:%M``).
    date_format: str = "%Y-%m-%d %H:%M:%S"
    #: The shop's local time zone, in which ``invoice_date`` is written.
    timezone: str = "Europe/London"
    currency: str = "GBP"


@dataclass
class RetailStats:
    """What a read kept and what it skipped, row by row and order by order."""

    rows: int = 0
    orders: int = 0
    lines: int = 0
    cancelled_rows: int = 0
    returned_rows: int = 0
    non_product_rows: int = 0
    invalid_rows: int = 0
    guest_orders: int = 0
    skipped_guest_orders: int = 0
    split_orders: int = 0
    empty_invoices: int = 0
    unknown_countries: int = 0


@dataclass
class _Invoice:
    """An invoice being assembled from its rows."""

    number: str
    opened: datetime
    last: datetime
    customer: str
    country: str
    lines: list[dict[str, Any]]


def customer_id(raw: str) -> str:
    """``17850.0`` -> ``17850``; other ids unchanged (stripped)."""
    raw = raw.strip()
    return raw[:-2] if raw.endswith(".0") and raw[:-2].isdigit() else raw


def read_retail_orders(
    sources: Iterable[str | Path | IO[str]],
    columns: RetailColumns = RetailColumns(),
    *,
    guests: bool = True,
    stats: RetailStats | None = None,
) -> Iterator[dict[str, Any]]:
    """Wire-format order dicts from retail CSV files (paths or open text files), in time order.

    ``stats``, when given, is filled in as the orders are read.
    """
    stats = RetailStats() if stats is None else stats
    zone = ZoneInfo(columns.timezone)
    open_invoices: dict[str, _Invoice] = {}
    for row in _rows(sources):
        stats.rows += 1
        number = row[columns.invoice].strip()
        try:
            quantity = int(float(row[columns.quantity]))
            price = float(row[columns.unit_price])
            ts = datetime.strptime(row[columns.invoice_date].strip(), columns.date_format).replace(tzinfo=zone)
        except ValueError:
            stats.invalid_rows += 1
            continue
        sku = row[columns.sku].strip()
        closed = [inv for inv in open_invoices.values() if inv.number != number and inv.last < ts]
        for invoice in closed:
            del open_invoices[invoice.number]
            yield from _orders(invoice, columns, guests, stats)
        if number.upper().startswith("C"):
            stats.cancelled_rows += 1
        elif quantity <= 0:
            stats.returned_rows += 1
        elif NON_PRODUCT.fullmatch(sku):
            stats.non_product_rows += 1
        elif price < 0:
            stats.invalid_rows += 1
        else:
            invoice = open_invoices.get(number)
            if invoice is None:
                invoice = open_invoices[number] = _Invoice(
                    number, ts, ts, customer_id(row[columns.customer]), row[columns.country].strip(), []
                )
            invoice.last = max(invoice.last, ts)
            description = row[columns.description].strip()
            invoice.lines.append({"sku": sku, "quantity": quantity, "unit_price": price, "description": description})
    for invoice in sorted(open_invoices.values(), key=lambda inv: inv.opened):
        yield from _orders(invoice, columns, guests, stats)


def _rows(sources: Iterable[str | Path | IO[str]]) -> Iterator[dict[str, str]]:
    """Rows of every source in turn, as dicts keyed by header."""
    for source in sources:
        if isinstance(source, (str, Path)):
            with open(source, newline="", encoding="utf-8") as handle:
                yield from csv.DictReader(handle)
        else:
            yield from csv.DictReader(source)


def _orders(invoice: _Invoice, columns: RetailColumns, guests: bool, stats: RetailStats) -> Iterator[dict[str, Any]]:
    """The order(s) of one complete invoice (several parts when it exceeds the wire's line limit)."""
    if not invoice.lines:
        stats.empty_invoices += 1
        return
    customer = invoice.customer
    if not customer:
        if not guests:
            stats.skipped_guest_orders += 1
            return
        customer = f"guest-{invoice.number}"
        stats.guest_orders += 1
    country = COUNTRY_CODES.get(invoice.country)
    if country is None:
        stats.unknown_countries += 1
    parts = [invoice.lines[i : i + MAX_LINES] for i in range(0, len(invoice.lines), MAX_LINES)]
    stats.split_orders += len(parts) > 1
    for part, lines in enumerate(parts, start=1):
        order_id = invoice.number if part == 1 else f"{invoice.number}/{part}"
        order: dict[str, Any] = {
            "event_id": f"retail-{order_id}",
            "order_id": order_id,
            "ts": invoice.opened.isoformat(),
            "customer_id": customer,
            "currency": columns.currency,
            "lines": lines,
        }
        if country is not None:
            order["country"] = country
        stats.orders += 1
        stats.lines += len(lines)
        yield order
