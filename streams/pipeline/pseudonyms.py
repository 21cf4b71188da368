"""Customer ids as keyed hashes: ``KAIROS_PSEUDONYMIZE_KEY`` (a secret) set, no raw customer id is kept.

The ingest replaces every event's ``customer_id`` by its pseudonym as soon
as the event is valid, before it is partitioned, reaches a state, a topic of
Kairos's own or a Redis key; the lookups (API, CLI) hash the id they are given
the same way, so a shop looks its customers up by their real ids and gets the
same answers as without the setting. The pseudonym is HMAC-SHA256 of the id
under the key, 128 bits in hex: stable across workers and restarts, not
reversible without the key. Changing the key starts every customer afresh
(their old state and views age out as inactive). ``session_id`` is hashed
the same way (sessions are served under their id, and a front end may mint
session ids from customer ids). Not hashed: ``device_id`` (kept in the
customers' payment history only) and the input topics and dead letters,
which hold what the shop produced.

>>> hashed = Pseudonyms("secret")
>>> hashed("c-42")
'ph-8ab2d7d68d3be27dab40da614003864a'
>>> hashed("c-42") == Pseudonyms("secret")("c-42") != Pseudonyms("other")("c-42")
True
>>> Pseudonyms(None)("c-42")  # no key: ids as they come
'c-42'
"""

from __future__ import annotations

import hashlib
import hmac

from pydantic import SecretStr

#: Marks a pseudonym (and keeps it apart from any raw id a shop might use).
PREFIX = "ph-"


class Pseudonyms:
    """``customer_id -> pseudonym`` under a key (identity without one)."""

    def __init__(self, key: SecretStr | str | None) -> None:
        secret = key.get_secret_value() if isinstance(key, SecretStr) else key
        self._key = secret.encode() if secret else None

    @property
    def enabled(self) -> bool:
        return self._key is not None

    def __call__(self, customer_id: str) -> str:
        if self._key is None:
            return customer_id
        return PREFIX + hmac.new(self._key, customer_id.encode(), hashlib.sha256).hexdigest()[:32]
