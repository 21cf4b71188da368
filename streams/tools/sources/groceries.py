"""Read basket data sets (one basket per line, or one item per row) into baskets and wire-format orders.

Two layouts are supported:

* **basket per line** (the arules "Groceries" set): no header, one basket per
  line, comma-separated item names — :func:`read_basket_lines`. These baskets
  have no time; :func:`spaced` stamps them ``step`` seconds apart.
* **item per row** (the "BreadBasket" bakery set: ``Date, Time, Transaction,
  Item``): rows of one transaction form a basket stamped with its first row's
  date and time in ``timezone``; ``NONE`` rows are not items and are dropped,
  a transaction with no item left is skipped — :func:`read_bakery`.

Item names are the SKUs; an item repeated within a basket counts once.
:func:`basket_orders` turns stamped baskets into ``orders`` events that
validate against :class:`~streams.pipeline.events.Order`: one line per item,
quantity 1, price 0 (these data sets have no prices), and one customer per
basket (``{source}-{id}``), since they have no customers either.

>>> import io
>>> baskets = list(read_basket_lines(io.StringIO("citrus fruit,margarine\\nwhole milk\\n")))
>>> baskets
[['citrus fruit', 'margarine'], ['whole milk']]
>>> order = next(basket_orders(spaced(baskets, start="2026-11-01T08:00:00+00:00", step=60.0), source="groceries"))
>>> order["order_id"], order["ts"], [line["sku"] for line in order["lines"]]
('groceries-0', '2026-11-01T08:00:00+00:00', ['citrus fruit', 'margarine'])
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from itertools import groupby
from pathlib import Path
from typing import IO, Any, NamedTuple
from zoneinfo import ZoneInfo

#: The bakery set's marker for a row without an item.
NO_ITEM = "NONE"


class StampedBasket(NamedTuple):
    """A basket with its id and event time."""

    basket_id: str
    ts: datetime
    items: list[str]


def _open(source: str | Path | IO[str]) -> IO[str]:
    return open(source, newline="", encoding="utf-8") if isinstance(source, (str, Path)) else source


def _unique(items: Iterable[str]) -> list[str]:
    """Stripped, non-empty items, each once, in first-seen order."""
    return list(dict.fromkeys(item.strip() for item in items if item.strip()))


def read_basket_lines(source: str | Path | IO[str]) -> Iterator[list[str]]:
    """Baskets of a basket-per-line file (no header, comma-separated items); blank lines are skipped."""
    with _open(source) as handle:
        for row in csv.reader(handle):
            if basket := _unique(row):
                yield basket


def spaced(baskets: Iterable[list[str]], start: str, step: float) -> Iterator[StampedBasket]:
    """Stamp baskets ``step`` seconds apart from ``start`` (ISO 8601 with a zone); ids are line numbers."""
    origin = datetime.fromisoformat(start)
    if origin.tzinfo is None:
        raise ValueError("start needs a time zone, e.g. 2026-11-01T08:00:00+00:00")
    for n, items in enumerate(baskets):
        yield StampedBasket(str(n), origin + timedelta(seconds=n * step), items)


def read_bakery(source: str | Path | IO[str], timezone: str = "Europe/London") -> Iterator[StampedBasket]:
    """Baskets of an item-per-row file (``Date, Time, Transaction, Item``), ``NONE`` rows dropped."""
    zone = ZoneInfo(timezone)
    with _open(source) as handle:
        for transaction, rows in groupby(csv.DictReader(handle), key=lambda row: row["Transaction"]):
            rows = list(rows)
            items = _unique(row["Item"] for row in rows if row["Item"].strip() != NO_ITEM)
            if items:
                ts = datetime.fromisoformat(f"{rows[0]['Date']}T{rows[0]['Time']}").replace(tzinfo=zone)
                yield StampedBasket(transaction, ts, items)


def basket_orders(baskets: Iterable[StampedBasket], source: str, currency: str = "EUR") -> Iterator[dict[str, Any]]:
    """Wire-format order dicts, one per basket: ids ``{source}-{basket_id}``, one line per item."""
    for basket in baskets:
        name = f"{source}-{basket.basket_id}"
        yield {
            "event_id": name,
            "order_id": name,
            "ts": basket.ts.isoformat(),
            "customer_id": name,
            "currency": currency,
            "lines": [{"sku": item, "quantity": 1, "unit_price": 0.0} for item in basket.items],
        }
