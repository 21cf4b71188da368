"""Creating the topics Kairos reads and writes, with kafka-python's admin client.

Faust creates its own internal topics (``<app_id>-events``, changelogs) at
start-up; the public ones (inputs, dead letters, alerts, segment changes) are
created here so producers can write before the first worker starts.
"""

from __future__ import annotations

import time

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from streams.settings import KairosSettings


def public_topics(settings: KairosSettings) -> list[str]:
    """Every public topic name, inputs first."""
    names = settings.topics
    return [names.clicks, names.orders, names.payments, names.labels, names.inventory,
            names.dead_letters, names.alerts, names.segment_changes]


def internal_topics(settings: KairosSettings) -> list[NewTopic]:
    """Internal topics Faust does not create itself."""
    return [NewTopic(settings.internal_topics["model_sync"], 1, settings.kafka_replication_factor,
                     topic_configs={"cleanup.policy": "compact"}),
            # The risk payment views as written, kept as long as they live in Redis (see view_log.py).
            NewTopic(settings.internal_topics["risk_views"], settings.partitions, settings.kafka_replication_factor,
                     topic_configs={"cleanup.policy": "delete",
                                    "retention.ms": str(settings.risk_payment_ttl_seconds * 1000)})]


def ensure_topics(settings: KairosSettings, timeout: float = 30.0,
                  public_configs: dict[str, str] | None = None) -> list[str]:
    """Create missing public topics (``settings.partitions`` each, with ``public_configs``) and internal ones;
    return those created."""
    wanted = {name: NewTopic(name, settings.partitions, settings.kafka_replication_factor,
                             topic_configs=public_configs or {})
              for name in public_topics(settings)}
    wanted.update({topic.name: topic for topic in internal_topics(settings)})
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin = KafkaAdminClient(client_id=f"{settings.app_id}-admin", **settings.kafka_client_options())
            break
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    try:
        existing = set(admin.list_topics())
        missing = [name for name in wanted if name not in existing]
        if missing:
            try:
                admin.create_topics([wanted[name] for name in missing])
            except TopicAlreadyExistsError:
                pass
        return missing
    finally:
        admin.close()
