"""The Online Retail replay reads invoices the way the wire contract would carry them."""

from __future__ import annotations

from pathlib import Path

from streams.tools.evaluation.segmentation import batched, online_retail_orders

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"


def test_invoices_become_orders_without_cancellations_fees_or_anonymous_rows(tmp_path: Path) -> None:
    (tmp_path / "2010-12-02.csv").write_text(HEADER + "".join([
        "536400,22111,HOT WATER BOTTLE,2,2010-12-02 09:00:00,4.25,17850.0,United Kingdom\n",
        "C536401,22111,HOT WATER BOTTLE,-2,2010-12-02 10:00:00,4.25,17850.0,United Kingdom\n",
    ]))
    (tmp_path / "2010-12-01.csv").write_text(HEADER + "".join([
        "536365,85123A,WHITE HANGING HEART,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom\n",
        "536365,71053,WHITE METAL LANTERN,1,2010-12-01 08:26:00,3.39,17850.0,United Kingdom\n",
        "536365,POST,POSTAGE,1,2010-12-01 08:26:00,18.00,17850.0,United Kingdom\n",
        "536366,DOT,DOTCOM POSTAGE,1,2010-12-01 08:28:00,569.77,13047.0,United Kingdom\n",
        "536367,22633,HAND WARMER,6,2010-12-01 08:34:00,1.85,,United Kingdom\n",
    ]))
    records, skipped = online_retail_orders(tmp_path)
    assert skipped == {"rows_without_customer": 1, "cancellation_rows": 1, "non_product_rows": 2}
    assert [record["order_id"] for _, record in records] == ["536365", "536400"]
    topic, first = records[0]
    assert topic == "orders"
    assert first == {
        "event_id": "inv-536365", "order_id": "536365", "ts": 1291191960.0, "customer_id": "17850",
        "currency": "GBP", "lines": [
            {"sku": "85123A", "quantity": 6, "unit_price": 2.55},
            {"sku": "71053", "quantity": 1, "unit_price": 3.39},
        ],
    }


def test_records_are_folded_in_batches_of_the_stream_size() -> None:
    assert [len(batch) for batch in batched(iter(range(7)), 3)] == [3, 3, 1]
