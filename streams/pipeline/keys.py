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

    def together(self, main: str, *parts: str) -> str:
        """A key kept in the Redis Cluster slot of the key ``main``: ``{main}`` is a hash tag, and a key without
        one hashes as a whole, so ``main`` keeps its plain name.

        >>> RedisKeys("kairos").together("kairos:alerts", "seen", "risk:p1")
        '{kairos:alerts}:seen:risk:p1'
        """
        return self.separator.join(("{" + main + "}", *parts))

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
        """Marks an alert id already appended to the stream (expires). Hash-tagged with the stream's name, so
        that both are in one Redis Cluster slot (the append is one script over the two)."""
        return self.together(self.alerts(), "seen", alert_id)

    def risk_rules_rejected(self) -> str:
        """Hash-tagged with the rules' hash: both change in one transaction (one Redis Cluster slot)."""
        return self.together(self.risk_rules(), "rejected")

    # Forecasts.
    def forecast(self, scope: str, series: str) -> str:
        return self.key("forecast", scope, series)

    # Stock-out risk (from inventory counts).
    def stock_sku(self, sku: str) -> str:
        """A SKU's stock on hand and hours until stock-out (hash)."""
        return self.key("stock", "sku", sku)

    def stock_risk(self) -> str:
        """SKUs by expected hours until stock-out, soonest first (sorted set sku -> hours)."""
        return self.key("stock", "risk")
    # Traffic anomalies: a scope's latest closed minute (hash), and every scope by its latest score (sorted set).
    def anomaly(self, kind: str, value: str) -> str:
        return self.key("anomaly", kind, value)

    def anomaly_scopes(self) -> str:
        return self.key("anomaly", "scopes")

    # Conversion propensity: a live session (hash), a customer's latest session id (string), the model (hash).
    def session(self, session_id: str) -> str:
        return self.key("session", session_id)

    def propensity_of(self, customer_id: str) -> str:
        return self.key("propensity", "customer", customer_id)

    def propensity_model(self) -> str:
        return self.key("propensity", "model")

    # Metrics per component (hash).
    def metrics(self, component: str) -> str:
        return self.key("metrics", component)

    # Set by the owner of an events partition once that partition's customer views are in Redis; a Redis
    # that comes back empty has none, and the owner republishes them (string, no TTL).
    def erasures(self) -> str:
        """Erasures requested and not yet applied (hash: stored customer id -> requested at, epoch seconds)."""
        return self.key("erasures")

    def erasures_recent(self) -> str:
        """Customers erased lately (sorted set: stored customer id -> erased at), for the stages that hold
        customers outside the customers table (the open sessions)."""
        return self.key("erasures", "recent")

    def views_published(self, partition: int) -> str:
        return self.key("meta", "views-published", str(partition))
