"""The Redis key schema: the only place that builds key strings.

Every view Kairos serves lives under one prefix (``KAIROS_PREFIX``, default
``kairos``) with ``:`` as separator. :meth:`RedisKeys.key` builds every key;
the named helpers document what each view holds (see the README table).

>>> keys = RedisKeys("kairos")
>>> keys.customer("c42")
'kairos:customer:c42'
>>> keys.reco_rule(["A", "B"], "C")
'kairos:reco:rule:A,B:C'
>>> keys.pattern("segment", "customer")
'kairos:segment:customer:*'
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class RedisKeys:
    """Prefix + separator, and one builder per view."""

    prefix: str = "kairos"
    separator: str = ":"

    def key(self, *parts: str) -> str:
        """Join the prefix and ``parts``; every key in Kairos comes from here."""
        return self.separator.join((self.prefix, *parts))

    def pattern(self, *parts: str) -> str:
        """A SCAN pattern for every key under ``parts``."""
        return self.key(*parts, "*")

    # Per-customer feature view (hash).
    def customer(self, customer_id: str) -> str:
        return self.key("customer", customer_id)

    # Segmentation.
    def segment_of(self, customer_id: str) -> str:
        return self.key("segment", "customer", customer_id)

    def segment_profile(self, segment_id: int | str) -> str:
        return self.key("segment", "profile", str(segment_id))

    def segment_sizes(self) -> str:
        return self.key("segment", "sizes")

    # Baskets.
    def reco_item(self, sku: str) -> str:
        return self.key("reco", "item", sku)

    def reco_rule(self, antecedent: Iterable[str], consequent: str) -> str:
        return self.key("reco", "rule", ",".join(antecedent), consequent)

    def reco_bestsellers(self) -> str:
        """Global best-sellers (sorted set sku -> recent units)."""
        return self.key("reco", "bestsellers", "global")

    def reco_bestsellers_segment(self, segment_id: int | str) -> str:
        """Best-sellers among one segment's customers."""
        return self.key("reco", "bestsellers", "segment", str(segment_id))

    # Risk.
    def risk_payment(self, payment_id: str) -> str:
        return self.key("risk", "payment", payment_id)

    def risk_rules(self) -> str:
        return self.key("risk", "rules")

    # Alerts (stream).
    def alerts(self) -> str:
        return self.key("alerts")

    def alert_seen(self, alert_id: str) -> str:
        """Marks an alert id already appended to the stream (expires)."""
        return self.key("alerts", "seen", alert_id)

    def risk_rules_rejected(self) -> str:
        return self.key("risk", "rules", "rejected")

    # Forecasts.
    def forecast(self, scope: str, series: str) -> str:
        return self.key("forecast", scope, series)

    # Traffic anomalies: a scope's latest closed minute (hash), and every scope by its latest score (sorted set).
    def anomaly(self, kind: str, value: str) -> str:
        return self.key("anomaly", kind, value)

    def anomaly_scopes(self) -> str:
        return self.key("anomaly", "scopes")

    # Metrics per component (hash).
    def metrics(self, component: str) -> str:
        return self.key("metrics", component)

    # Set by the owner of an events partition once that partition's customer views are in Redis; a Redis
    # that comes back empty has none, and the owner republishes them (string, no TTL).
    def views_published(self, partition: int) -> str:
        return self.key("meta", "views-published", str(partition))
