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

from streams.pipeline.store import KeyedStore

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


class PartitionSnapshots(Generic[S]):
    """One state object per partition of an agent's topic, checkpointed into ``store``."""

    def __init__(self, name: str, store: KeyedStore[bytes], new: Callable[[int], S],
                 restore: Callable[[dict[str, Any]], S], interval: float) -> None:
        self.name = name
        self.store = store
        self.new = new
        self.restore = restore
        self.interval = interval
        self.states: dict[int, S] = {}
        self.locks: dict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._held: dict[int, list[Any]] = defaultdict(list)
        self._last = time.monotonic()
        self.snapshots_written = 0

    def get(self, partition: int) -> S:
        """This partition's state: in memory, else restored from its snapshot, else new."""
        state = self.states.get(partition)
        if state is None:
            stored = self.store.get(self._key(partition))
            state = self.restore(unpack_state(stored)) if stored is not None else self.new(partition)
            self.states[partition] = state
        return state

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
                if state is not None:
                    async with self.locks[partition]:
                        packed = await asyncio.to_thread(_packed, state)
                    self.store.put(partition, self._key(partition), packed)
            await self.store.flush()
        except Exception:
            for partition, events in held.items():  # keep them for the next checkpoint
                self._held[partition][:0] = events
            log.exception("%s: checkpoint failed; its messages stay unacknowledged", self.name)
            return
        self.snapshots_written += len(held)
        for events in held.values():
            for event in events:
                event.ack()

    def forget(self, partitions: set[int]) -> None:
        """Drop the in-memory states of revoked partitions (their next owner restores them)."""
        for partition in partitions:
            self.states.pop(partition, None)
            self._held.pop(partition, None)

    def _key(self, partition: int) -> str:
        return f"{self.name}/{partition}"
