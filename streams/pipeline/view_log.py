"""The risk payment views as written, kept in Kafka so that a Redis that comes back empty gets them back.

A payment's risk view (score, decision, reasons at scoring time) is not part
of any state: the model that scored it has moved on. So the customers stage
sends each view it writes to ``<app_id>-risk-views`` as well (packed with the
chunk's other derived records, on the payment's customer partition, kept for
the views' TTL), and the owner of a partition whose views Redis lost reads
that partition back (:func:`read_risk_views`) and writes what has not expired.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.pipeline.packing import decode_packet


async def read_risk_views(client_options: dict[str, Any], topic: str, partition: int) -> dict[str, dict[str, str]]:
    """The latest view per payment id on ``partition`` of ``topic``, from its first record to its end."""
    tp = TopicPartition(topic, partition)
    consumer = AIOKafkaConsumer(**client_options, enable_auto_commit=False, group_id=None,
                                auto_offset_reset="earliest", max_partition_fetch_bytes=4 << 20)
    await consumer.start()
    views: dict[str, dict[str, str]] = {}
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        while await consumer.position(tp) < end:
            fetched = await consumer.getmany(tp, timeout_ms=500)
            for records in fetched.values():
                for record in records:
                    for batch in decode_packet(record.value):
                        for _, view in batch.entries:
                            views[view["payment_id"]] = view
            highwater = consumer.highwater(tp)
            if highwater is not None and await consumer.position(tp) >= highwater:
                break  # some brokers report the last batch's base offset as the end (see store.py)
    finally:
        await consumer.stop()
    return views
