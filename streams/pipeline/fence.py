"""Keep a revoked partition's writes out of its changelog once its next owner may read it.

Faust runs a rebalance while agents are mid-batch (``stream_wait_empty`` is
off: the checkpointed stages hold acknowledgements for seconds), and an
agent may still hold events fetched in the old generation. Without a fence, a
worker whose partition was revoked could flush that partition's keys *after*
the new owner recovered it: a zombie write that the next recovery would take
as the newest value (state going back in time, counts lost).

:class:`WriteFence` closes that window:

* every stage does its folding and flushing inside :meth:`WriteFence.writing`;
* the revocation handler (awaited by Faust inside the rebalance, before this
  worker rejoins the group, so before any new owner is assigned) waits in
  :meth:`WriteFence.revoke` until no stage is writing, then raises the
  minimum assignment epoch (stamped on each message by the consumer, see
  :mod:`streams.pipeline.transport`): events fetched before the rebalance
  are skipped from then on (:meth:`WriteFence.current`). They are not acknowledged, so the
  partition's owner in the new generation (this worker or another) gets them
  again from the last committed offset.

A stage that cannot finish its write (e.g. Redis down, retrying) holds the
rebalance up rather than writing behind the new owner's back.

>>> import asyncio
>>> from types import SimpleNamespace
>>> fence = WriteFence()
>>> old = SimpleNamespace(message=SimpleNamespace(epoch=3, acked=False))
>>> new = SimpleNamespace(message=SimpleNamespace(epoch=4, acked=False))
>>> fence.current(old)
True
>>> asyncio.run(fence.revoke(4))  # the next assignment is epoch 4
>>> fence.current(old), fence.current(new), fence.skipped
(False, True, 1)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any


class WriteFence:
    """Shared access for writers, exclusive access for a revocation."""

    def __init__(self) -> None:
        self._condition: asyncio.Condition | None = None
        self._writers = 0
        self._closed = False
        self._shut = False
        #: Events fetched in an older assignment epoch than this are stale.
        self.min_epoch = 0
        #: Stale events skipped since start.
        self.skipped = 0

    @property
    def condition(self) -> asyncio.Condition:
        if self._condition is None:  # created on the running loop
            self._condition = asyncio.Condition()
        return self._condition

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[None]:
        """Fold and flush inside this; a revocation waits for it (and new writers wait for a revocation)."""
        async with self.condition:
            await self.condition.wait_for(lambda: not self._closed)
            self._writers += 1
        try:
            yield
        finally:
            async with self.condition:
                self._writers -= 1
                self.condition.notify_all()

    async def revoke(self, next_epoch: int, on_closed: Callable[[], Any] = lambda: None) -> None:
        """Wait until nothing writes, make events older than ``next_epoch`` stale, run ``on_closed``."""
        async with self.condition:
            self._closed = True
            try:
                await self.condition.wait_for(lambda: self._writers == 0)
                self.min_epoch = max(self.min_epoch, next_epoch)
                on_closed()
            finally:
                self._closed = self._shut
                self.condition.notify_all()

    async def shut(self, timeout: float) -> bool:
        """For a stop: let no new write start, wait up to ``timeout`` s for those in flight; True if none is left.

        The worker closes its producers and Redis client only after this, so a
        batch in flight finishes its writes instead of failing on a closed client;
        one still unfinished at the timeout is cancelled with its agent and not
        acknowledged (the next owner applies it).
        """
        async with self.condition:
            self._closed = True
            self._shut = True
            try:
                await asyncio.wait_for(self.condition.wait_for(lambda: self._writers == 0), timeout)
            except asyncio.TimeoutError:
                return False
            return True

    def current(self, event: Any) -> bool:
        """False for an event fetched before the last revocation.

        A stale event is never marked applied, so no acknowledgement of it is
        committed (see ``transport.PromptFetchConsumer.ack``): it is delivered
        again in the new generation.
        """
        epoch = getattr(event.message, "epoch", None)
        if epoch is None or epoch >= self.min_epoch:
            return True
        self.skipped += 1
        return False
