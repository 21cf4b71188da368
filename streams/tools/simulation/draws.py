"""Random draws the simulation shares, on a caller-owned ``random.Random``."""

from __future__ import annotations

import math
import random


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson count (Knuth's product method; a rounded normal above mean 30).

    >>> rng = random.Random(0)
    >>> round(sum(poisson(rng, 4.0) for _ in range(20_000)) / 20_000, 1)
    4.0
    """
    if mean <= 0:
        return 0
    if mean > 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit = math.exp(-mean)
    count, product = 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def spread(rng: random.Random, mean: float, sigma: float) -> float:
    """A positive value scattered around ``mean`` (lognormal with unit median factor)."""
    return mean * math.exp(rng.gauss(0.0, sigma))


def money(value: float) -> float:
    """An amount rounded to cents."""
    return round(value, 2)
