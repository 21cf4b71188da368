"""Replay sources for basket data: retail transaction CSVs, basket-per-line files and the bakery layout."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from streams.pipeline.events import Order
from streams.tools.sources.groceries import basket_orders, read_bakery, read_basket_lines, spaced
from streams.tools.sources.pacing import paced
from streams.tools.sources.retail_csv import RetailColumns, RetailStats, customer_id, read_retail_orders

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
DAY_ONE = HEADER + (
    "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom\n"
    "536365,71053,WHITE METAL LANTERN,6,2010-12-01 08:26:00,3.39,17850.0,United Kingdom\n"
    "536365,POST,POSTAGE,1,2010-12-01 08:26:00,18.0,17850.0,United Kingdom\n"
    "536366,22633,HAND WARMER UNION JACK,6,2010-12-01 08:28:00,1.85,17850.0,United Kingdom\n"
    "536367,84879,ASSORTED COLOUR BIRD ORNAMENT,32,2010-12-01 08:34:00,1.69,13047.0,Channel Islands\n"
    "536367,22745,POPPY'S PLAYHOUSE BEDROOM,6,2010-12-01 08:34:00,2.1,13047.0,Channel Islands\n"
    "536367,22748,POPPY'S PLAYHOUSE KITCHEN,6,2010-12-01 08:35:00,2.1,13047.0,Channel Islands\n"
    "C536379,D,Discount,-1,2010-12-01 09:41:00,27.5,14527.0,United Kingdom\n"
    "C536383,35004C,SET OF 3 COLOURED  FLYING DUCKS,-1,2010-12-01 09:49:00,4.65,15311.0,United Kingdom\n"
    "536384,82484,WOOD BLACK BOARD ANT WHITE FINISH,3,2010-12-01 09:53:00,6.45,,EIRE\n"
    "536384,84755,COLOUR GLASS T-LIGHT HOLDER HANGING,-48,2010-12-01 09:53:00,0.65,,EIRE\n"
    "536385,22783,SET 3 WICKER OVAL BASKETS W LIDS,1,2010-12-01 09:56:00,not-a-price,17420.0,United Kingdom\n"
    "536386,M,Manual,1,2010-12-01 09:57:00,1.0,16029.0,United Kingdom\n"
)
DAY_TWO = HEADER + (
    "536520,22110,BIRD HOUSE HOT WATER BOTTLE,2,2010-12-02 07:42:00,2.55,14729.0,France\n"
    "536521,gift_0001_40,Dotcomgiftshop Gift Voucher £40.00,1,2010-12-02 08:01:00,34.04,,United Kingdom\n"
)


@pytest.fixture
def retail_files(tmp_path: Path) -> list[Path]:
    first, second = tmp_path / "2010-12-01.csv", tmp_path / "2010-12-02.csv"
    first.write_text(DAY_ONE)
    second.write_text(DAY_TWO)
    return [first, second]


def test_retail_rows_become_valid_orders_grouped_by_invoice_in_time_order(retail_files: list[Path]) -> None:
    stats = RetailStats()
    orders = list(read_retail_orders(retail_files, stats=stats))
    assert [o["order_id"] for o in orders] == ["536365", "536366", "536367", "536384", "536520"]
    for order in orders:
        Order.model_validate_json(json.dumps(order))
    first = orders[0]
    assert first["event_id"] == "retail-536365" and first["customer_id"] == "17850"
    assert first["ts"] == "2010-12-01T08:26:00+00:00" and first["currency"] == "GBP" and first["country"] == "GB"
    assert [(line["sku"], line["quantity"], line["unit_price"]) for line in first["lines"]] == [
        ("85123A", 6, 2.55), ("71053", 6, 3.39),
    ]
    # An invoice whose lines span two minutes stays one order, stamped with its first row.
    assert [line["sku"] for line in orders[2]["lines"]] == ["84879", "22745", "22748"]
    assert "country" not in orders[2]  # Channel Islands has no ISO code of its own
    assert orders[3]["customer_id"] == "guest-536384" and orders[3]["country"] == "IE"
    assert orders[4]["country"] == "FR"


def test_retail_stats_count_what_was_skipped_and_why(retail_files: list[Path]) -> None:
    stats = RetailStats()
    list(read_retail_orders(retail_files, stats=stats))
    assert stats == RetailStats(
        rows=15, orders=5, lines=8, cancelled_rows=2, returned_rows=1, non_product_rows=3, invalid_rows=1,
        guest_orders=1, skipped_guest_orders=0, split_orders=0, empty_invoices=0, unknown_countries=1,
    )


def test_guest_orders_can_be_skipped(retail_files: list[Path]) -> None:
    stats = RetailStats()
    orders = list(read_retail_orders(retail_files, guests=False, stats=stats))
    assert "536384" not in {o["order_id"] for o in orders}
    assert stats.skipped_guest_orders == 1 and stats.guest_orders == 0


def test_an_invoice_longer_than_an_order_is_split(tmp_path: Path) -> None:
    rows = "".join(f"540001,{10000 + i},ITEM {i},1,2011-01-04 10:00:00,1.25,12346.0,Germany\n" for i in range(1201))
    path = tmp_path / "big.csv"
    path.write_text(HEADER + rows)
    stats = RetailStats()
    orders = list(read_retail_orders([path], stats=stats))
    assert [(o["order_id"], len(o["lines"])) for o in orders] == [("540001", 500), ("540001/2", 500), ("540001/3", 201)]
    assert stats.split_orders == 1 and stats.orders == 3
    for order in orders:
        Order.model_validate_json(json.dumps(order))


def test_other_layouts_are_read_through_a_column_mapping(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text(
        "Invoice,Code,Name,Qty,Date,Price,Customer,Land\n"
        "A-17,SKU-9,Lamp,2,11/22/2026 18:05,19.5,C-77,Germany\n"
    )
    columns = RetailColumns(
        invoice="Invoice", sku="Code", description="Name", quantity="Qty", invoice_date="Date",
        unit_price="Price", customer="Customer", country="Land", date_format="%m/%d/%Y %H:%M",
        timezone="Europe/Berlin", currency="EUR",
    )
    (order,) = read_retail_orders([path], columns)
    assert order["ts"] == "2026-11-22T18:05:00+01:00" and order["currency"] == "EUR"
    assert order["customer_id"] == "C-77" and order["lines"][0]["description"] == "Lamp"
    assert Order.model_validate_json(json.dumps(order)).ts.timestamp() == 1795367100.0


def test_customer_ids_written_as_floats_become_integers() -> None:
    raw_ids = ("17850.0", " 12346.0 ", "C-77", "1.5", "")
    assert [customer_id(raw) for raw in raw_ids] == ["17850", "12346", "C-77", "1.5", ""]


def test_basket_lines_become_baskets_and_timed_orders(tmp_path: Path) -> None:
    path = tmp_path / "groceries.csv"
    path.write_text("citrus fruit,semi-finished bread,margarine,ready soups\n\ntropical fruit,yogurt,coffee,yogurt\n")
    baskets = list(read_basket_lines(path))
    assert baskets == [
        ["citrus fruit", "semi-finished bread", "margarine", "ready soups"],
        ["tropical fruit", "yogurt", "coffee"],
    ]
    orders = list(basket_orders(spaced(baskets, start="2026-11-01T08:00:00Z", step=90.0), source="groceries"))
    assert [o["ts"] for o in orders] == ["2026-11-01T08:00:00+00:00", "2026-11-01T08:01:30+00:00"]
    for order in orders:
        Order.model_validate_json(json.dumps(order))
    with pytest.raises(ValueError, match="time zone"):
        next(spaced(baskets, start="2026-11-01T08:00:00", step=1.0))


def test_bakery_rows_are_grouped_by_transaction_without_none(tmp_path: Path) -> None:
    path = tmp_path / "bakery.csv"
    path.write_text(
        "Date,Time,Transaction,Item\n"
        "2016-10-30,09:58:11,1,Bread\n"
        "2016-10-30,10:05:34,2,Scandinavian\n"
        "2016-10-30,10:05:34,2,Scandinavian\n"
        "2016-10-30,10:07:57,3,Hot chocolate\n"
        "2016-10-30,10:07:57,3,Jam\n"
        "2016-10-30,10:08:41,4,NONE\n"
    )
    baskets = list(read_bakery(path))
    assert [(b.basket_id, b.items) for b in baskets] == [
        ("1", ["Bread"]), ("2", ["Scandinavian"]), ("3", ["Hot chocolate", "Jam"]),
    ]
    (order,) = [o for o in basket_orders(baskets, source="bakery") if o["order_id"] == "bakery-3"]
    assert order["ts"] == "2016-10-30T10:07:57+00:00"
    Order.model_validate_json(json.dumps(order))


def test_replay_paces_orders_by_a_speed_factor_of_their_event_time(retail_files: list[Path]) -> None:
    now = [1000.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    orders = list(paced(read_retail_orders(retail_files), speed=120.0, clock=lambda: now[0], sleep=sleep))
    assert len(orders) == 5
    # 08:26 -> 08:28 -> 08:34 -> 09:53 -> next day 07:42, at 120x: 1 s, 3 s, 39.5 s, 654.5 s.
    assert waits == pytest.approx([1.0, 3.0, 39.5, 654.5])
    assert list(paced(orders, speed=math.inf, sleep=waits.append)) == orders and len(waits) == 4
