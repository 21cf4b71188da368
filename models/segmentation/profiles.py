"""Readable segment profiles: size, a typical member in human units, a name from dominant traits."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from models.segmentation.features import CustomerFeatures
from models.segmentation.segmenter import Segmenter

#: Feature -> ((adjective, noun) when the segment is high on it, (adjective, noun) when low).
TRAITS: dict[str, tuple[tuple[str, str], tuple[str, str]]] = {
    "spend_30d": (("high-value", "big spenders"), ("low-spend", "light spenders")),
    "avg_order_value": (("premium", "premium buyers"), ("bargain", "bargain hunters")),
    "orders_30d": (("loyal", "regulars"), ("occasional", "occasional buyers")),
    "recency_weeks": (("lapsing", "lapsing customers"), ("active", "active customers")),
    "browse_to_buy": (("browsing", "browsers"), ("decisive", "decisive buyers")),
    "cart_abandonment": (("hesitant", "cart abandoners"), ("committed", "committed buyers")),
    "basket_units": (("bulk", "bulk buyers"), ("single-item", "single-item buyers")),
    "sessions_30d": (("engaged", "frequent visitors"), ("rare", "rare visitors")),
}
#: A feature is a trait of a segment when its centroid is at least this many standard deviations off.
TRAIT_Z = 0.5
CURRENCY_SYMBOLS = {"EUR": "€", "GBP": "£", "USD": "$", "JPY": "¥"}


@dataclass(frozen=True)
class SegmentProfile:
    """What a marketer reads about one segment.

    ``centroid`` is the segment's typical member in human units (the centroid
    mapped back through :meth:`CustomerFeatures.to_units`; for log-compressed
    features that is a geometric-mean-like typical value, not the arithmetic
    mean). ``traits`` are the centroid's z-scores against the population.

    >>> profile = SegmentProfile(3, "bargain browsers", 120, {}, {}, "avg order €12", 1.5e9)
    >>> profile.to_dict()["name"]
    'bargain browsers'
    """

    segment_id: int
    name: str
    size: int
    centroid: dict[str, float]
    traits: dict[str, float]
    summary: str
    updated_at: float

    def to_dict(self) -> dict[str, Any]:
        """Plain data for a view (e.g. the ``segment:profile`` hash)."""
        return asdict(self)


def money(amount: float, currency: str) -> str:
    """``€84`` / ``€4.50`` / ``84 CHF``: whole units from 10 up, cents below."""
    text = f"{amount:,.0f}" if amount >= 10 else f"{amount:,.2f}"
    symbol = CURRENCY_SYMBOLS.get(currency)
    return f"{symbol}{text}" if symbol else f"{text} {currency}"


def days_ago(days: float) -> str:
    """``today`` / ``1 day ago`` / ``12 days ago``."""
    if days < 1:
        return "today"
    whole = round(days)
    return "1 day ago" if whole == 1 else f"{whole} days ago"


def summary_line(units: dict[str, float], currency: str) -> str:
    """One line such as ``avg order €84, 3.1 orders/30d, 12 views/30d, last seen 2 days ago``.

    Centroid coordinates can land a hair below zero after un-standardising;
    they read as zero, and a segment that does not buy says so.

    >>> summary_line({"avg_order_value": -0.001, "orders_per_30d": -0.01, "views_per_30d": 14.2,
    ...               "days_since_seen": 0.4}, "EUR")
    'no orders, 14 views/30d, last seen today'
    """
    average, orders = max(0.0, units["avg_order_value"]), max(0.0, units["orders_per_30d"])
    buying = (f"avg order {money(average, currency)}, {orders:.1f} orders/30d"
              if average >= 0.01 and orders >= 0.05 else "no orders")
    return f"{buying}, {max(0.0, units['views_per_30d']):.0f} views/30d, last seen {days_ago(units['days_since_seen'])}"


def _ranked_traits(z_scores: dict[str, float]) -> list[tuple[str, str]]:
    """(adjective, noun) of each trait, strongest first."""
    strong = sorted(
        ((abs(z), feature, z) for feature, z in z_scores.items() if feature in TRAITS and abs(z) >= TRAIT_Z),
        key=lambda item: (-item[0], item[1]),
    )
    return [TRAITS[feature][0 if z > 0 else 1] for _, feature, z in strong]


def segment_names(z_scores: dict[int, dict[str, float]]) -> dict[int, str]:
    """A unique name per segment from its dominant traits.

    The strongest trait gives the noun, the next one an adjective
    ("bargain browsers"); a segment without a strong trait is "typical
    customers". Clashing names take one more adjective, then the segment id.

    >>> segment_names({0: {"browse_to_buy": 1.8, "avg_order_value": -0.9},
    ...                1: {"orders_30d": 1.2, "spend_30d": 1.0},
    ...                2: {"recency_weeks": 2.0}, 3: {"recency_weeks": 0.1}})
    {0: 'bargain browsers', 1: 'high-value regulars', 2: 'lapsing customers', 3: 'typical customers'}
    """
    ranked = {segment: _ranked_traits(z) for segment, z in z_scores.items()}

    def name(segment: int, adjectives: int) -> str:
        traits = ranked[segment]
        if not traits:
            return "typical customers"
        words = [adjective for adjective, _ in reversed(traits[1 : 1 + adjectives])]
        return " ".join([*words, traits[0][1]])

    names = {segment: name(segment, 1) for segment in ranked}
    clashes = Counter(names.values())
    names = {s: name(s, 2) if clashes[n] > 1 else n for s, n in names.items()}
    clashes = Counter(names.values())
    return {s: f"{n} ({s})" if clashes[n] > 1 else n for s, n in names.items()}


def profile_segments(
    segmenter: Segmenter,
    updated_at: float,
    currency: str = "EUR",
    to_units: Callable[[dict[str, float]], dict[str, float]] = CustomerFeatures.to_units,
) -> list[SegmentProfile]:
    """Profiles of every segment of ``segmenter`` (whose vectors came from :class:`CustomerFeatures`).

    ``updated_at`` is the event time of the model the profiles describe.
    Sizes are this segmenter's own customers (with several workers, add up
    the ``counts`` of their exported stats for population sizes).
    """
    centroids = segmenter.centroids()
    scaled = segmenter.centroids(scaled=True)
    sizes = segmenter.sizes()
    names = segment_names(scaled)
    profiles = []
    for segment in sorted(centroids):
        units = to_units(centroids[segment])
        profiles.append(
            SegmentProfile(
                segment_id=segment,
                name=names[segment],
                size=sizes[segment],
                centroid=units,
                traits=scaled[segment],
                summary=summary_line(units, currency),
                updated_at=updated_at,
            )
        )
    return profiles
