"""What a simulated shop looks like: one validated settings object."""

from __future__ import annotations

from datetime import datetime
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from streams.tools.simulation.catalog import CATEGORIES
from streams.tools.simulation.inventory import PLANT_AFTER_DAYS, PLANT_BEFORE_END_DAYS


class SimulatorConfig(BaseModel):
    """Settings of one simulated shop; the same config and seed give the same stream.

    The defaults describe a mid-sized shop over two weeks (about 340k events,
    7k orders); :meth:`live_demo` is a smaller, livelier shop for a paced demo.
    Throughput scales with ``customers x days`` (about 12 events per customer-day).

    >>> SimulatorConfig(customers=50, days=1.5).end_ts - SimulatorConfig().start_ts
    129600.0
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = Field(7, ge=0)
    customers: int = Field(2000, ge=5, le=999_999)
    skus: int = Field(300, ge=20, le=99_999)
    categories: int = Field(8, ge=1, le=len(CATEGORIES))
    start: str = "2026-11-01T00:00:00Z"
    days: float = Field(14.0, gt=0, le=3650)
    fraud_rate: float = Field(0.01, ge=0, lt=0.5)
    fraud_drift_at: float | None = Field(None, gt=0, lt=1)
    surges: int = Field(2, ge=0, le=50)
    chaos: float = Field(0.0, ge=0, le=0.5)
    label_share_legit: float = Field(0.2, ge=0, le=1)
    #: Best-selling SKUs whose stock is counted on the ``inventory`` topic (0: no inventory events), and the
    #: sell-outs planted among them (see ``inventory.StockKeeper``).
    inventory_skus: int = Field(0, ge=0, le=10_000)
    sellouts: int = Field(0, ge=0, le=1_000)
    #: Browsing sessions per customer-day relative to the segments' (orders unchanged): the click share of
    #: the stream. 1 gives about 95 % clicks; 0.1 about 87 %, with three times the orders per click.
    browsing: float = Field(1.0, gt=0, le=10)
    #: Traffic incidents to plant (bot bursts, gateway failures, checkout breaks, card testing, broken producers).
    incidents: int = Field(0, ge=0, le=500)

    @field_validator("start")
    @classmethod
    def _start_has_zone(cls, value: str) -> str:
        if datetime.fromisoformat(value).tzinfo is None:
            raise ValueError("start needs a time zone, e.g. 2026-11-01T00:00:00Z")
        return value

    @model_validator(mode="after")
    def _enough_skus(self) -> Self:
        if self.skus < 2 * self.categories:
            raise ValueError("need at least two SKUs per category")
        if self.sellouts and not self.inventory_skus:
            raise ValueError("planted sell-outs need inventory_skus")
        shortest = PLANT_AFTER_DAYS + PLANT_BEFORE_END_DAYS
        if self.sellouts and self.days <= shortest:
            raise ValueError(f"planted sell-outs need a run of more than {shortest:g} days")
        return self

    @property
    def start_ts(self) -> float:
        """Start of the simulated run, epoch seconds."""
        return datetime.fromisoformat(self.start).timestamp()

    @property
    def end_ts(self) -> float:
        """End of the simulated run (exclusive), epoch seconds."""
        return self.start_ts + self.days * 86_400.0

    @property
    def drift_ts(self) -> float | None:
        """When fraud patterns change, epoch seconds, or ``None`` without drift."""
        if self.fraud_drift_at is None:
            return None
        return self.start_ts + self.fraud_drift_at * self.days * 86_400.0

    @classmethod
    def live_demo(cls, seed: int = 7) -> SimulatorConfig:
        """A shop for a paced live demo: every signal shows up within minutes of wall time.

        Three simulated days of 1000 customers (about 38k events), a surge on
        days two and three, fraud five times the usual rate with drift halfway,
        a sprinkle of bad and duplicate messages for the dead-letter view, and
        the stock of the ten best sellers counted (the stock-out risk panel).
        """
        return cls(
            seed=seed, customers=1000, days=3.0, fraud_rate=0.05, fraud_drift_at=0.5,
            surges=2, chaos=0.005, inventory_skus=10,
        )
