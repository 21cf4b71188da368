"""Python clients of the lookup API: :class:`KairosClient` (sync) and :class:`AsyncKairosClient`.

Both offer the same lookups with the same signatures; each lookup is defined
once, in :class:`KairosLookups`, as a :class:`Call` (method, path, parameters,
response model), and each client only knows how to send a call: the sync
client returns the parsed answer, the async client a coroutine of it. Answers
are the pydantic models of :mod:`streams.serving.schemas`; an error answer
raises :class:`KairosError` with the API's status, code and message.

>>> call = KairosLookups.cart_recommendations.build(["A", "B"], customer_id="c1", limit=5)
>>> call.method, call.path, call.params
('GET', '/api/v1/recommendations/cart', {'items': 'A,B', 'customer_id': 'c1', 'limit': 5})
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, ParamSpec, TypeVar, overload
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from streams.serving.schemas import (
    AlertList,
    CustomerView,
    Forecast,
    ForecastList,
    PaymentRisk,
    PipelineMetrics,
    Recommendations,
    RiskRuleBody,
    RiskRuleList,
    RiskRuleView,
    RuleList,
    SegmentList,
    SegmentProfile,
)

API = "/api/v1"
ModelT = TypeVar("ModelT", bound=BaseModel)
P = ParamSpec("P")


class KairosError(Exception):
    """An error answer of the API (or no answer at all: ``status`` 0, code ``unreachable``)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Call(Generic[ModelT]):
    """One API request and the model its answer parses into (``None``: no body expected)."""

    method: str
    path: str
    response: type[ModelT] | None
    params: dict[str, Any] = field(default_factory=dict)
    body: dict[str, Any] | None = None


def segment(value: str) -> str:
    """An id made safe as one path segment."""
    return quote(value, safe="")


def without_none(**params: Any) -> dict[str, Any]:
    """Query parameters, leaving out those not given."""
    return {name: value for name, value in params.items() if value is not None}


def parse(call: Call[ModelT], response: httpx.Response) -> ModelT | None:
    """The answer as ``call.response``, or :class:`KairosError` for an error status."""
    if response.is_error:
        try:
            error = response.json()["error"]
            raise KairosError(response.status_code, error["code"], error["message"])
        except (ValueError, KeyError, TypeError):
            raise KairosError(response.status_code, "http_error", response.text[:500]) from None
    return None if call.response is None else call.response.model_validate_json(response.content)


class lookup(Generic[P, ModelT]):  # noqa: N801 - used as a method decorator
    """A lookup defined once: builds its :class:`Call`; read from a client, it sends the call there.

    On :class:`KairosClient` the method returns the parsed answer, on
    :class:`AsyncKairosClient` an awaitable of it.
    """

    def __init__(self, build: Callable[P, Call[ModelT]]) -> None:
        self.build = build
        functools.update_wrapper(self, build)

    @overload
    def __get__(self, client: None, owner: type) -> lookup[P, ModelT]: ...

    @overload
    def __get__(self, client: AsyncKairosClient, owner: type) -> Callable[P, Awaitable[ModelT]]: ...

    @overload
    def __get__(self, client: KairosClient, owner: type) -> Callable[P, ModelT]: ...

    def __get__(self, client: KairosLookups | None, owner: type) -> Any:
        if client is None:
            return self

        @functools.wraps(self.build)
        def send(*args: P.args, **kwargs: P.kwargs) -> Any:
            return client._send(self.build(*args, **kwargs))

        return send


class KairosLookups:
    """Every lookup of the API, defined once; subclasses say how a :class:`Call` is sent.

    On :class:`KairosClient` each method returns the parsed answer; on
    :class:`AsyncKairosClient` it returns a coroutine of it (``await`` it).
    """

    def _send(self, call: Call[Any]) -> Any:
        raise NotImplementedError

    @lookup
    @staticmethod
    def customer(customer_id: str) -> Call[CustomerView]:
        """A customer's features, segment and segment profile."""
        return Call("GET", f"{API}/customers/{segment(customer_id)}", CustomerView)

    @lookup
    @staticmethod
    def segments() -> Call[SegmentList]:
        """Every segment with its size and profile."""
        return Call("GET", f"{API}/segments", SegmentList)

    @lookup
    @staticmethod
    def segment(segment_id: int) -> Call[SegmentProfile]:
        """One segment's profile."""
        return Call("GET", f"{API}/segments/{int(segment_id)}", SegmentProfile)

    @lookup
    @staticmethod
    def item_recommendations(sku: str, limit: int = 10) -> Call[Recommendations]:
        """What goes with one SKU."""
        return Call("GET", f"{API}/recommendations/items/{segment(sku)}", Recommendations, {"limit": limit})

    @lookup
    @staticmethod
    def cart_recommendations(items: Sequence[str], customer_id: str | None = None,
                             limit: int = 10) -> Call[Recommendations]:
        """What goes with a cart (and, given the customer, their segment's best-sellers)."""
        params = without_none(items=",".join(items), customer_id=customer_id, limit=limit)
        return Call("GET", f"{API}/recommendations/cart", Recommendations, params)

    @lookup
    @staticmethod
    def customer_recommendations(customer_id: str, limit: int = 10) -> Call[Recommendations]:
        """What to show a customer."""
        return Call("GET", f"{API}/recommendations/customers/{segment(customer_id)}", Recommendations,
                    {"limit": limit})

    @lookup
    @staticmethod
    def rules(limit: int = 20, min_lift: float = 0.0) -> Call[RuleList]:
        """Top association rules by lift."""
        return Call("GET", f"{API}/rules", RuleList, {"limit": limit, "min_lift": min_lift})

    @lookup
    @staticmethod
    def payment_risk(payment_id: str) -> Call[PaymentRisk]:
        """A payment's risk verdict and reasons."""
        return Call("GET", f"{API}/risk/payments/{segment(payment_id)}", PaymentRisk)

    @lookup
    @staticmethod
    def alerts(kinds: Sequence[str] = (), since: float | None = None, limit: int = 50) -> Call[AlertList]:
        """Recent alerts, newest first."""
        params = without_none(kind=list(kinds) or None, since=since, limit=limit)
        return Call("GET", f"{API}/alerts", AlertList, params)

    @lookup
    @staticmethod
    def forecasts(scope: str = "category") -> Call[ForecastList]:
        """Every forecast series of a scope."""
        return Call("GET", f"{API}/forecasts", ForecastList, {"scope": scope})

    @lookup
    @staticmethod
    def forecast(scope: str, key: str) -> Call[Forecast]:
        """One forecast series."""
        return Call("GET", f"{API}/forecasts/{segment(scope)}/{segment(key)}", Forecast)

    @lookup
    @staticmethod
    def metrics() -> Call[PipelineMetrics]:
        """Pipeline health and model metrics."""
        return Call("GET", f"{API}/metrics", PipelineMetrics)

    @lookup
    @staticmethod
    def risk_rules() -> Call[RiskRuleList]:
        """Every analyst risk rule."""
        return Call("GET", f"{API}/risk/rules", RiskRuleList)

    @lookup
    @staticmethod
    def risk_rule(rule_id: str) -> Call[RiskRuleView]:
        """One analyst risk rule."""
        return Call("GET", f"{API}/risk/rules/{segment(rule_id)}", RiskRuleView)

    @lookup
    @staticmethod
    def put_risk_rule(rule_id: str, expression: str, action: str | float, enabled: bool = True,
                      description: str = "") -> Call[RiskRuleView]:
        """Add or replace an analyst rule (``KairosError`` 422 with the reason when it is invalid)."""
        body = RiskRuleBody(expression=expression, action=action, enabled=enabled, description=description)
        return Call("PUT", f"{API}/risk/rules/{segment(rule_id)}", RiskRuleView, body=body.model_dump())

    @lookup
    @staticmethod
    def delete_risk_rule(rule_id: str) -> Call[Any]:
        """Delete an analyst rule."""
        return Call("DELETE", f"{API}/risk/rules/{segment(rule_id)}", None)

    @lookup
    @staticmethod
    def pause_risk_rule(rule_id: str) -> Call[RiskRuleView]:
        """Stop applying a rule without deleting it."""
        return Call("POST", f"{API}/risk/rules/{segment(rule_id)}/pause", RiskRuleView)

    @lookup
    @staticmethod
    def resume_risk_rule(rule_id: str) -> Call[RiskRuleView]:
        """Apply a paused rule again."""
        return Call("POST", f"{API}/risk/rules/{segment(rule_id)}/resume", RiskRuleView)


def http_options(base_url: str, api_key: str | None, timeout: float) -> dict[str, Any]:
    """Options shared by the sync and async httpx clients."""
    return {"base_url": base_url, "timeout": timeout, "headers": {"X-API-Key": api_key} if api_key else {}}


def unreachable(exc: httpx.TransportError) -> KairosError:
    """The error raised when the API did not answer at all."""
    return KairosError(0, "unreachable", f"{type(exc).__name__}: {exc}")


class KairosClient(KairosLookups):
    """Blocking client: ``KairosClient("http://127.0.0.1:8000").customer("c1")``; close it (or use ``with``)."""

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 5.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.http = httpx.Client(transport=transport, **http_options(base_url, api_key, timeout))

    def _send(self, call: Call[ModelT]) -> ModelT | None:
        try:
            response = self.http.request(call.method, call.path, params=call.params, json=call.body)
        except httpx.TransportError as exc:
            raise unreachable(exc) from exc
        return parse(call, response)

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

    def __enter__(self) -> KairosClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncKairosClient(KairosLookups):
    """Asyncio client: ``await AsyncKairosClient(url).customer("c1")``; close it (or use ``async with``)."""

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 5.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.http = httpx.AsyncClient(transport=transport, **http_options(base_url, api_key, timeout))

    def _send(self, call: Call[ModelT]) -> Awaitable[ModelT | None]:
        return self._request(call)

    async def _request(self, call: Call[ModelT]) -> ModelT | None:
        try:
            response = await self.http.request(call.method, call.path, params=call.params, json=call.body)
        except httpx.TransportError as exc:
            raise unreachable(exc) from exc
        return parse(call, response)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.http.aclose()

    async def __aenter__(self) -> AsyncKairosClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
