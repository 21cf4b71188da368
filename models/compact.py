"""Compact per-key state: fixed sets of named numbers stored unboxed.

Per-customer state is held for hundreds of thousands of keys per worker, so
its representation decides a worker's memory. A ``dict`` of ``n`` floats costs
a hash table plus one 24-byte float object per value; :class:`NamedFloats`
keeps the values in one ``array('d')`` (8 bytes each) behind a name index
shared by every instance with the same names, and still reads and writes by
name like the dict it replaces.

>>> sums = NamedFloats(("orders", "spend"))
>>> sums["spend"] += 12.5
>>> sums.add("orders", 1.0)
>>> sums.scale(0.5)
>>> dict(sums)
{'orders': 0.5, 'spend': 6.25}
>>> NamedFloats(("orders", "spend"), [1.0, 2.0]) == {"orders": 1.0, "spend": 2.0}
True
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Mapping
from functools import lru_cache


@lru_cache(maxsize=None)
def _index(names: tuple[str, ...]) -> dict[str, int]:
    return {name: position for position, name in enumerate(names)}


class NamedFloats(Mapping):
    """A fixed, ordered set of named floats in one unboxed array (a mapping that cannot grow)."""

    __slots__ = ("names", "numbers", "_positions")

    def __init__(self, names: tuple[str, ...], values: Iterable[float] | None = None) -> None:
        self.names = names
        self._positions = _index(names)
        self.numbers = array("d", values) if values is not None else array("d", bytes(8 * len(names)))
        if len(self.numbers) != len(names):
            raise ValueError(f"{len(names)} names but {len(self.numbers)} values")

    def __getitem__(self, name: str) -> float:
        return self.numbers[self._positions[name]]

    def __setitem__(self, name: str, value: float) -> None:
        self.numbers[self._positions[name]] = value

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def items(self) -> Iterator[tuple[str, float]]:  # type: ignore[override]  # faster than the view
        return zip(self.names, self.numbers)

    def add(self, name: str, amount: float) -> None:
        """``self[name] += amount`` in one call (the hot path of a fold)."""
        self.numbers[self._positions[name]] += amount

    def scale(self, factor: float) -> None:
        """Multiply every value by ``factor`` in place."""
        numbers = self.numbers
        for position in range(len(numbers)):
            numbers[position] *= factor

    def __reduce__(self) -> tuple:
        return NamedFloats, (self.names, list(self.numbers))

    def __repr__(self) -> str:
        return f"NamedFloats({dict(self.items())!r})"
