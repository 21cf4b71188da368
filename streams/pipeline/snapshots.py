"""Partition states checkpointed with held acknowledgements (exactly-once for big states).

Some states are one object per partition and too big to write per batch: the
basket counter, the sales monitor, the risk learner with its pending labels.
:class:`PartitionSnapshots` keeps them in memory, holds back the Kafka
acknowledgements of the messages folded into them, and every
``interval`` seconds writes each changed state (zlib-compressed JSON, its
replay guard inside) as one record of a changelogged table, and only then
acknowledges those messages. After a crash Faust restores the last snapshot
and redelivers everything after the last committed offset; the state's own
guard skips what the snapshot already holds. Nothing is applied twice or lost.

A state that holds many small entries changing a few at a time (the risk
learner's pending payments) is checkpointed in parts (``entries=True``): its
core as the partition's record, and each entry changed since the last
checkpoint as a record of its own (``<name>/<partition>/<entry>``, a
tombstone when it is gone), all in the same flush, so in one record batch per
partition (appended atomically). A checkpoint then costs what changed, not
what is held. Restoring reads the core and every entry of the partition.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections import defaultdict
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

import orjson

from models.base import StateVersionError
from streams.pipeline.store import KeyedStore
from streams.pipeline.transport import mark_applied

log = logging.getLogger(__name__)


class PartitionState(Protocol):
    """What a checkpointed partition state offers."""

    def state_dict(self) -> dict[str, Any]: ...


S = TypeVar("S", bound=PartitionState)


def pack_state(state: dict[str, Any]) -> bytes:
    """A state as compressed JSON (numpy scalars and arrays allowed)."""
    return zlib.compress(orjson.dumps(state, option=orjson.OPT_SERIALIZE_NUMPY), 1)


def unpack_state(data: bytes) -> dict[str, Any]:
    return orjson.loads(zlib.decompress(data))


def _packed(state: PartitionState) -> bytes:
    return pack_state(state.state_dict())


def _packed_parts(state: Any) -> tuple[bytes, dict[str, bytes | None]]:
    core, changes = state.checkpoint_parts()
    return pack_state(core), {name: None if value is None else orjson.dumps(value) for name, value in changes.items()}


class PartitionSnapshots(Generic[S]):
    """One state object per partition of an agent's topic, checkpointed into ``store``."""

    def __init__(self, name: str, store: KeyedStore[bytes], new: Callable[[int], S],
                 restore: Callable[..., S], interval: float, entries: bool = False) -> None:
        """``restore(state)`` rebuilds a state; with ``entries``, ``restore(core, entries)`` does, and
        states offer ``journal()``, ``checkpoint_parts() -> (core, {entry: value or None})`` and
        ``resend_changes()`` (the last parts were not written)."""
        self.name = name
        self.store = store
        self.new = new
        self.restore = restore
        self.interval = interval
        self.entries = entries
        self.states: dict[int, S] = {}
        self.locks: dict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._held: dict[int, list[Any]] = defaultdict(list)
        self._last = time.monotonic()
        self.snapshots_written = 0
        #: Snapshots this release could not read (an incompatible version), replaced by a new state.
        self.snapshots_discarded = 0

    def get(self, partition: int) -> S:
        """This partition's state: in memory, else restored from its snapshot, else new."""
        state = self.states.get(partition)
        if state is None:
            stored = self.store.get(self._key(partition))
            if stored is None:
                state = self.new(partition)
                if self.entries:
                    state.journal()
            else:
                try:
                    if self.entries:
                        state = self.restore(unpack_state(stored), self._stored_entries(partition))
                    else:
                        state = self.restore(unpack_state(stored))
                except StateVersionError as exc:
                    # A snapshot written by an older (or newer) release: starting this partition's state afresh
                    # loses what it learned; refusing it would crash the agent at every restart.
                    log.warning("%s: partition %d's snapshot cannot be read by this release (%s); started afresh",
                                self.name, partition, exc)
                    self.snapshots_discarded += 1
                    state = self.new(partition)
                    if self.entries:
                        state.journal()
            self.states[partition] = state
        return state

    def restore_stored(self, partitions: set[int]) -> list[int]:
        """Restore those of ``partitions`` that have a snapshot and are not in memory (:meth:`get` restores one
        only when asked, on its first event); the partitions restored. One without a snapshot stays unmade: a
        new state's grace (no watermark until its paths have spoken) starts when it is made, so its first event
        makes it."""
        restored = [p for p in sorted(partitions - self.states.keys()) if self.store.get(self._key(p)) is not None]
        for partition in restored:
            self.get(partition)
        return restored

    def _stored_entries(self, partition: int) -> list[tuple[str, Any]]:
        prefix = self._key(partition) + "/"
        return [(key[len(prefix):], orjson.loads(value)) for key, value in list(self.store.table.data.items())
                if isinstance(key, str) and key.startswith(prefix) and value is not None]

    def hold(self, partition: int, event: Any) -> None:
        """Acknowledge ``event`` only once a snapshot holds what it changed."""
        self._held[partition].append(event)

    def due(self) -> bool:
        return bool(self._held) and time.monotonic() - self._last >= self.interval

    def lock(self, partition: int) -> asyncio.Lock:
        """Hold this while changing the partition's state (a checkpoint reads it in a worker thread)."""
        return self.locks[partition]

    async def checkpoint(self) -> None:
        """Snapshot every partition with held messages, then acknowledge them.

        Each state is serialised in a worker thread under its partition's lock,
        so its agent waits but the event loop (and every other stage) does not.
        """
        held, self._held = self._held, defaultdict(list)
        self._last = time.monotonic()
        if not held:
            return
        try:
            for partition in held:
                state = self.states.get(partition)
                if state is None:
                    continue
                key = self._key(partition)
                async with self.locks[partition]:
                    if self.entries:
                        packed, changes = await asyncio.to_thread(_packed_parts, state)
                    else:
                        packed, changes = await asyncio.to_thread(_packed, state), {}
                for name, value in changes.items():
                    if value is None:
                        self.store.delete(partition, f"{key}/{name}")
                    else:
                        self.store.put(partition, f"{key}/{name}", value)
                self.store.put(partition, key, packed)
            await self.store.flush()
        except Exception:
            for partition, events in held.items():  # keep them for the next checkpoint
                self._held[partition][:0] = events
                state = self.states.get(partition)
                if self.entries and state is not None:
                    state.resend_changes()  # the entries this one took (puts and removals) go out with the next
            log.exception("%s: checkpoint failed; its messages stay unacknowledged", self.name)
            return
        self.snapshots_written += len(held)
        for events in held.values():
            mark_applied(events)  # the snapshot holds them: they may be committed now
            for event in events:
                event.ack()

    def forget(self, partitions: set[int]) -> None:
        """Drop the in-memory states of revoked partitions (their next owner restores them)."""
        for partition in partitions:
            self.states.pop(partition, None)
            self._held.pop(partition, None)

    def _key(self, partition: int) -> str:
        return f"{self.name}/{partition}"
