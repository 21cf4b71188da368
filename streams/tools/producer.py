"""Sending events to Kafka: JSON Lines files (``kairos produce``) and event iterators.

Events are keyed as the wire contract says: ``customer_id`` (``payment_id`` for
labels). Lines are checked against the topic's schema before sending, so a
typo in a file is reported with its line number instead of becoming a dead
letter; ``validate=False`` sends every line as it is (to exercise the
dead-letter path on purpose).

Before sending, :func:`prepare_topic` makes sure the topic exists: Kairos's
own topics are created as a worker creates them, any other one only when
asked, so a typo (``ordrs``) is refused instead of becoming a topic.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import IO, Any
from urllib.parse import urlsplit

from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from streams.pipeline.ingest import ROUTING_FIELD
from streams.pipeline.topics import ensure_topics, public_topics
from streams.pipeline.validation import EventValidator
from streams.settings import KairosSettings


class UnknownTopic(LookupError):
    """The topic to send to does not exist and was not to be created."""


@dataclass
class ProduceReport:
    """What was sent and what was refused (line number, reason)."""

    topic: str
    sent: int = 0
    rejects: list[tuple[int, str]] = field(default_factory=list)

    def summary(self, shown: int = 10) -> str:
        lines = [f"{self.topic}: sent {self.sent}, rejected {len(self.rejects)}"]
        lines += [f"  line {number}: {reason}" for number, reason in self.rejects[:shown]]
        if len(self.rejects) > shown:
            lines.append(f"  ... and {len(self.rejects) - shown} more")
        return "\n".join(lines)


def kafka_producer(settings: KairosSettings, **overrides: Any) -> KafkaProducer:
    """A kafka-python producer for the configured cluster, batching by default."""
    options = {
        "acks": "all", "linger_ms": 5, "batch_size": 256 * 1024,
        "max_request_size": 4 << 20, "client_id": f"{settings.app_id}-producer",
    }
    options.update(overrides)
    return KafkaProducer(**settings.kafka_client_options(), **options)


def require_broker(settings: KairosSettings, timeout: float = 5.0) -> None:
    """Raise ``KafkaConnectionError`` at once when no bootstrap server accepts a connection.

    kafka-python's clients would retry for 30 s before saying so.
    """
    reasons = []
    for server in settings.kafka_bootstrap.split(","):
        address = urlsplit(f"//{server.strip()}")
        try:
            with socket.create_connection((address.hostname, address.port or 9092), timeout=timeout):
                return
        except (OSError, ValueError) as exc:
            reasons.append(f"{server.strip()} ({getattr(exc, 'strerror', None) or exc})")
    raise KafkaConnectionError(f"cannot connect to {', '.join(reasons)}")


def ensure_kairos_topics(settings: KairosSettings) -> None:
    """Create Kairos's missing topics (:func:`ensure_topics`), failing at once when no broker listens."""
    require_broker(settings)
    ensure_topics(settings)


def prepare_topic(settings: KairosSettings, topic: str, create: bool = False) -> None:
    """Make sure ``topic`` exists: Kairos's topics are created if missing, another one only with ``create``.

    Raises :class:`UnknownTopic` (naming the input topics) for a missing topic that is not to be created.
    """
    if topic in public_topics(settings):
        ensure_kairos_topics(settings)
        return
    require_broker(settings)
    admin = KafkaAdminClient(client_id=f"{settings.app_id}-admin", **settings.kafka_client_options())
    try:
        if topic in admin.list_topics():
            return
        if not create:
            raise UnknownTopic(f"no topic {topic!r} at {settings.kafka_bootstrap}; the input topics are "
                               f"{', '.join(settings.topics.inputs())} (--create makes a new topic)")
        with contextlib.suppress(TopicAlreadyExistsError):
            admin.create_topics([NewTopic(topic, settings.partitions, settings.kafka_replication_factor)])
    finally:
        admin.close()


def event_type_of(settings: KairosSettings, topic: str) -> str | None:
    """The event type read from ``topic`` (None for a topic Kairos does not ingest)."""
    return settings.topics.inputs().get(topic)


def produce_lines(settings: KairosSettings, topic: str, stream: IO[bytes], key_field: str | None = None,
                  validate: bool = True) -> ProduceReport:
    """Send every JSON line of ``stream`` to ``topic``; report sends and rejects."""
    event_type = event_type_of(settings, topic)
    key_field = key_field or ROUTING_FIELD.get(event_type or "", "customer_id")
    validator = EventValidator(settings.max_event_bytes)
    report = ProduceReport(topic)
    producer = kafka_producer(settings)
    try:
        for number, line in enumerate(stream, start=1):
            line = line.strip()
            if not line:
                continue
            key = _key_of(line, key_field)
            if validate:
                reason = _reject_reason(validator, event_type, line, key, key_field)
                if reason:
                    report.rejects.append((number, reason))
                    continue
            producer.send(topic, value=line, key=key.encode() if key else None)
            report.sent += 1
        producer.flush()
    finally:
        producer.close()
    return report


def _key_of(line: bytes, key_field: str) -> str | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    key = value.get(key_field) if isinstance(value, dict) else None
    return key if isinstance(key, str) else None


def _reject_reason(validator: EventValidator, event_type: str | None, line: bytes, key: str | None,
                   key_field: str) -> str | None:
    if event_type is not None:
        outcome = validator.check(event_type, line)
        if outcome.reason:
            return outcome.reason
    if key is None:
        return f"no string {key_field!r} to key the message by"
    return None


def send_events(producer: KafkaProducer, events: Iterable[tuple[str, str, bytes]]) -> int:
    """Send ``(topic, key, value)`` triples; return how many were sent."""
    sent = 0
    for topic, key, value in events:
        producer.send(topic, value=value, key=key.encode())
        sent += 1
    producer.flush()
    return sent
