"""Scored payments waiting for their fraud label, keyed by payment id.

Labels carry only a ``payment_id`` and arrive days after the payment, so the
stream sends each scored payment's feature snapshot (features, score, alert
decision, ts) to the partition of its payment id, where its label will also
arrive, and keeps one :class:`PendingLabels` per partition. Every payment comes
out exactly once as a :class:`LabelledPayment` for the scorer to learn from:

- when its label arrives (``source="label"``); a label that arrives before its
  snapshot is held and matched when the snapshot comes;
- when it matures without a label (``maturity_seconds`` after its ``ts``, in
  event time): learned as legitimate (``source="maturity"``) when
  ``learn_unlabelled_as_legit`` is set, else dropped;
- when the map is full, the oldest payment leaves early, as if matured
  (``source="capacity"``).

Resolved payment ids are remembered for another ``maturity_seconds`` after
they mature, so a repeated label or snapshot (redelivery after a crash) is not
learned twice. A payment that matured as legitimate keeps its snapshot there:
a label arriving after maturity is not thrown away but learned as what it is,
a **correction** (a fraud label: the payment is learned again, as fraud,
``source="correction"``, counted ``corrected``) or a **confirmation** (a
legitimate label: already learned so, counted ``confirmed``). Only a label
later still, or one whose snapshot never comes (``unmatched``), is not
learned (``late``).
Checkpoint this object together with the scorer and the source offsets; then
no label is learned twice or lost across a restart.

Memory: at most ``max_pending`` pending snapshots, ``max_pending`` early labels
and ``max_pending`` resolved ids (each also bounded by time). A pending
snapshot is held as its JSON text, encoded once when it arrives: a checkpoint
of tens of thousands of them then costs little more than copying that text
(it was most of a risk checkpoint's CPU, and stalled the event loop).

>>> pending = PendingLabels(maturity_seconds=100.0)
>>> pending.add("p1", {"amount_z": 4.0}, score=0.9, alerted=True, ts=0.0)
[]
>>> pending.add("p2", {"amount_z": 0.1}, score=0.1, alerted=False, ts=10.0)
[]
>>> pending.label("p1", True, ts=50.0).is_fraud
True
>>> pending.label("p1", True, ts=51.0) is None  # a repeat is not learned again
True
>>> [(p.payment_id, p.is_fraud, p.source) for p in pending.expire(now=120.0)]
[('p2', False, 'maturity')]
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Generic, Literal, Self, TypeVar

import orjson

from models.base import check_state_tag

Value = TypeVar("Value")


@dataclass(frozen=True, slots=True)
class LabelledPayment:
    """A payment ready to learn from: its snapshot at scoring time and its outcome."""

    payment_id: str
    features: dict[str, float]
    score: float
    alerted: bool
    is_fraud: bool
    source: Literal["label", "maturity", "capacity", "correction"]


class _TimedMap(Generic[Value]):
    """A dict keyed by id that also yields its entries oldest ``ts`` first."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[float, Value]] = {}
        self._heap: list[tuple[float, str]] = []
        #: Keys put or removed since the last :meth:`PendingLabels.changes` (``None``: not journaling).
        self.touched: set[str] | None = None

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def put(self, key: str, ts: float, value: Value) -> None:
        self.entries[key] = (ts, value)
        if self.touched is not None:
            self.touched.add(key)
        heapq.heappush(self._heap, (ts, key))
        if len(self._heap) > 2 * len(self.entries) + 64:
            self._heap = [(t, k) for k, (t, _) in self.entries.items()]
            heapq.heapify(self._heap)

    def pop(self, key: str) -> tuple[float, Value] | None:
        entry = self.entries.pop(key, None)
        if entry is not None and self.touched is not None:
            self.touched.add(key)
        return entry

    def pop_oldest(self, before: float = float("inf")) -> tuple[str, float, Value] | None:
        """Remove and return the oldest entry if its ts is before ``before``."""
        while self._heap:
            ts, key = self._heap[0]
            entry = self.entries.get(key)
            if entry is None or entry[0] != ts:
                heapq.heappop(self._heap)
                continue
            if ts >= before:
                return None
            heapq.heappop(self._heap)
            del self.entries[key]
            if self.touched is not None:
                self.touched.add(key)
            return key, ts, entry[1]
        return None

    def rows(self) -> list[list[Any]]:
        """``[key, ts, value]`` per entry, in the order they were put (restoring them keeps it)."""
        return [[key, ts, value] for key, (ts, value) in self.entries.items()]


class PendingLabels:
    """Bounded map payment id → feature snapshot, resolved by a label or by maturity."""

    STATE_MODEL = "PendingLabels"
    STATE_VERSION = 3

    def __init__(
        self,
        maturity_seconds: float = 7 * 86400.0,
        learn_unlabelled_as_legit: bool = True,
        max_pending: int = 100_000,
    ) -> None:
        if maturity_seconds <= 0 or max_pending < 1:
            raise ValueError("need maturity_seconds > 0 and max_pending >= 1")
        self.maturity_seconds = maturity_seconds
        self.learn_unlabelled_as_legit = learn_unlabelled_as_legit
        self.max_pending = max_pending
        #: payment_id -> (ts, JSON text of [features, score, alerted])
        self._pending: _TimedMap[str] = _TimedMap()
        #: payment_id -> (label ts, is_fraud) for labels that came before their snapshot.
        self._early: _TimedMap[bool] = _TimedMap()
        #: payment_id -> (payment ts, [how it was resolved, its snapshot when it matured unlabelled]).
        self._resolved: _TimedMap[list[Any]] = _TimedMap()
        self.counts = dict.fromkeys(("labelled", "matured", "dropped", "evicted", "repeated", "late", "unmatched",
                                     "corrected", "confirmed"), 0)
        # Entry keys per map reported by the last changes(), until the next (for resend()).
        self._sent: dict[str, set[str]] = {}

    def add(
        self, payment_id: str, features: dict[str, float], score: float, alerted: bool, ts: float
    ) -> list[LabelledPayment]:
        """Hold a scored payment's snapshot; returns what is ready to learn because of it."""
        if payment_id in self._resolved or payment_id in self._pending:
            self.counts["repeated"] += 1
            return []
        snapshot = orjson.dumps([features, score, alerted], option=orjson.OPT_SERIALIZE_NUMPY).decode()
        early = self._early.pop(payment_id)
        if early is not None:
            return [self._resolve(payment_id, ts, snapshot, early[1])]
        self._pending.put(payment_id, ts, snapshot)
        ready = []
        while len(self._pending) > self.max_pending and (oldest := self._pending.pop_oldest()) is not None:
            self.counts["evicted"] += 1
            ready.extend(self._unlabelled(*oldest, "capacity"))
        return ready

    def label(self, payment_id: str, is_fraud: bool, ts: float) -> LabelledPayment | None:
        """Apply a label; returns the payment to learn from, or ``None`` (repeat, confirmation, late or early)."""
        entry = self._pending.pop(payment_id)
        if entry is not None:
            return self._resolve(payment_id, entry[0], entry[1], is_fraud)
        resolved = self._resolved.entries.get(payment_id)
        if resolved is not None:
            paid_at, (source, snapshot) = resolved
            if source in ("label", "correction"):
                self.counts["repeated"] += 1
                return None
            if source == "dropped":  # matured unlabelled and not learned: learned now, from its label
                return self._resolve(payment_id, paid_at, snapshot, is_fraud)
            if snapshot is None:  # resolved before snapshots were kept (an older checkpoint)
                self.counts["late"] += 1
                return None
            self._resolved.put(payment_id, paid_at, ["correction" if is_fraud else "label", None])
            if not is_fraud:
                self.counts["confirmed"] += 1
                return None
            self.counts["corrected"] += 1
            features, score, alerted = orjson.loads(snapshot)
            return LabelledPayment(payment_id, features, score, alerted, True, "correction")
        self._early.put(payment_id, ts, is_fraud)
        while len(self._early) > self.max_pending and self._early.pop_oldest() is not None:
            self.counts["unmatched"] += 1
        return None

    def expire(self, now: float) -> list[LabelledPayment]:
        """Payments matured by event time ``now`` (learned as legit, or dropped by setting)."""
        cutoff = now - self.maturity_seconds
        ready = []
        while (oldest := self._pending.pop_oldest(before=cutoff)) is not None:
            payment_id, ts, snapshot = oldest
            self.counts["matured"] += 1
            ready.extend(self._unlabelled(payment_id, ts, snapshot, "maturity"))
        while self._early.pop_oldest(before=cutoff) is not None:
            self.counts["unmatched"] += 1
        while self._resolved.pop_oldest(before=cutoff - self.maturity_seconds) is not None:
            pass
        return ready

    def stats(self) -> dict[str, int]:
        """Sizes and counters: pending, early labels, and what happened to payments so far."""
        return {"pending": len(self._pending), "early_labels": len(self._early), **self.counts}

    def clone(self) -> Self:
        """The same settings, empty."""
        return type(self)(self.maturity_seconds, self.learn_unlabelled_as_legit, self.max_pending)

    # -- incremental checkpoints -------------------------------------------------

    #: Entry name prefixes of the three maps in :meth:`changes`.
    MAPS = {"p": "_pending", "e": "_early", "r": "_resolved"}

    def journal(self) -> None:
        """Record from now on which entries change, for :meth:`changes`; the first call reports every entry.

        A pipeline checkpoints tens of thousands of pending payments every
        couple of seconds: writing only what changed (a few per payment) keeps
        that cost proportional to the traffic, not to what is pending.
        """
        for attr in self.MAPS.values():
            timed = getattr(self, attr)
            timed.touched = set(timed.entries)

    def changes(self) -> dict[str, list[Any] | None]:
        """Entries put or removed since the last call: ``"p/<id>"`` (pending), ``"e/<id>"`` (early label) or
        ``"r/<id>"`` (resolved) to ``[ts, value]``, or to ``None`` when gone. Needs :meth:`journal`.

        With :meth:`core_dict`, what :meth:`from_parts` rebuilds the object from.

        >>> pending = PendingLabels(maturity_seconds=100.0)
        >>> pending.journal()
        >>> pending.add("p1", {"amount_z": 4.0}, score=0.9, alerted=True, ts=0.0)
        []
        >>> pending.changes()
        {'p/p1': [0.0, '[{"amount_z":4.0},0.9,true]']}
        >>> pending.label("p1", False, ts=5.0).source
        'label'
        >>> sorted(pending.changes().items())
        [('p/p1', None), ('r/p1', [0.0, ['label', None]])]
        >>> pending.changes()
        {}
        """
        out: dict[str, list[Any] | None] = {}
        self._sent = {}
        for code, attr in self.MAPS.items():
            timed = getattr(self, attr)
            if timed.touched is None:
                raise RuntimeError("call journal() first")
            for key in timed.touched:
                entry = timed.entries.get(key)
                out[f"{code}/{key}"] = None if entry is None else [entry[0], entry[1]]
            self._sent[code], timed.touched = timed.touched, set()
        return out

    def resend(self) -> None:
        """The last :meth:`changes` were not written: report those entries again (as they are by then)."""
        for code, keys in self._sent.items():
            timed = getattr(self, self.MAPS[code])
            if timed.touched is not None:
                timed.touched |= keys
        self._sent = {}

    def core_dict(self) -> dict[str, Any]:
        """:meth:`state_dict` without the entries (they go out through :meth:`changes`)."""
        return self.state_dict(rows=False)

    @classmethod
    def from_parts(cls, core: dict[str, Any], entries: Iterable[tuple[str, list[Any]]]) -> Self:
        """Rebuild from :meth:`core_dict` output and the latest value of every entry :meth:`changes` reported.

        The result journals (its next :meth:`changes` reports only what changes after this).
        """
        if core.get("model") == cls.STATE_MODEL and core.get("version") == 2:  # resolved ids kept no snapshot
            core = core | {"version": cls.STATE_VERSION}
            entries = ((name, [ts, [value, None] if name.startswith("r/") else value]) for name, (ts, value) in entries)
        check_state_tag(core, cls.STATE_MODEL, cls.STATE_VERSION)
        pending = cls(core["maturity_seconds"], core["learn_unlabelled_as_legit"], core["max_pending"])
        pending.counts = pending.counts | core["counts"]
        maps = {code: getattr(pending, attr) for code, attr in cls.MAPS.items()}
        for name, (ts, value) in entries:
            code, _, key = name.partition("/")
            maps[code].put(key, ts, value)
        for timed in maps.values():
            timed.touched = set()
        return pending

    def state_dict(self, rows: bool = True) -> dict[str, Any]:
        """Plain-data checkpoint; entries in arrival order, a pending snapshot as its JSON text."""
        state = {
            "model": self.STATE_MODEL,
            "version": self.STATE_VERSION,
            "maturity_seconds": self.maturity_seconds,
            "learn_unlabelled_as_legit": self.learn_unlabelled_as_legit,
            "max_pending": self.max_pending,
            "counts": dict(self.counts),
        }
        if rows:
            state |= {"pending": self._pending.rows(), "early": self._early.rows(), "resolved": self._resolved.rows()}
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """Rebuild from :meth:`state_dict` output (of this version, or of version 1 or 2)."""
        if state.get("version") == 1:  # version 1 held each snapshot as a list, oldest first: same content
            state = state | {"version": 2, "pending": [
                [payment_id, ts, orjson.dumps(snapshot).decode()] for payment_id, ts, snapshot in state["pending"]]}
        rows = ((f"{code}/{key}", [ts, value]) for code, attr in cls.MAPS.items() for key, ts, value in state[attr[1:]])
        pending = cls.from_parts(state, rows)
        for attr in cls.MAPS.values():
            getattr(pending, attr).touched = None  # not journaling unless asked
        return pending

    def _resolve(self, payment_id: str, ts: float, snapshot: str, is_fraud: bool) -> LabelledPayment:
        self._remember_resolved(payment_id, ts, "label", None)
        self.counts["labelled"] += 1
        features, score, alerted = orjson.loads(snapshot)
        return LabelledPayment(payment_id, features, score, alerted, is_fraud, "label")

    def _unlabelled(
        self, payment_id: str, ts: float, snapshot: str, source: Literal["maturity", "capacity"]
    ) -> list[LabelledPayment]:
        # The snapshot stays with the resolved id: a label still on its way is learned (as a correction).
        if not self.learn_unlabelled_as_legit:
            self._remember_resolved(payment_id, ts, "dropped", snapshot)
            self.counts["dropped"] += 1
            return []
        self._remember_resolved(payment_id, ts, source, snapshot)
        features, score, alerted = orjson.loads(snapshot)
        return [LabelledPayment(payment_id, features, score, alerted, False, source)]

    def _remember_resolved(self, payment_id: str, ts: float, source: str, snapshot: str | None) -> None:
        self._resolved.put(payment_id, ts, [source, snapshot])
        while len(self._resolved) > self.max_pending:
            self._resolved.pop_oldest()
