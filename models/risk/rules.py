"""Analyst rules beside the model: added, replaced, paused and deleted at runtime.

A :class:`RiskRule` is a condition in the tiny language of
:mod:`models.risk.expression` over a payment's fields (``amount``, ``method``,
``ip_country``, ...) and its risk features (``velocity_1m``, ``new_card``, ...;
see :data:`RULE_FIELDS`), with an action: ``"review"``, ``"block"``, or a score
floor in (0, 1] that raises the payment's score to at least that value. Rules
are validated when they are created, so a bad rule never reaches the
:class:`RuleBook`; :meth:`RuleBook.load` takes raw dicts (e.g. from a control
topic) and returns a readable reason for each one it rejects. A rule that
raises while evaluated counts as not hit; its failures are counted
(:meth:`RuleBook.failure_reasons`), so one rule can never stop scoring.

Memory: the rule book holds at most ``max_rules`` rules.

>>> book = RuleBook()
>>> book.load([
...     {"id": "big-abroad", "expression": "amount > 1000 and ip_country != billing_country",
...      "action": "review", "description": "large payment from abroad"},
...     {"id": "burst", "expression": "velocity_1m >= 5", "action": 0.9},
...     {"id": "typo", "expression": "amount > 1000 and ip_county == 'NG'", "action": "block"},
... ])
{'typo': "expression: unknown field 'ip_county' (did you mean 'ip_country'?)"}
>>> payment = {"amount": 1500.0, "ip_country": "NG", "billing_country": "DE", "method": "card"}
>>> [rule.id for rule in book.evaluate({"velocity_1m": 6.0}, payment)]
['big-abroad', 'burst']
>>> book.pause("burst")
>>> [rule.id for rule in book.evaluate({"velocity_1m": 6.0}, payment)]
['big-abroad']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from models.base import check_state_tag
from models.risk.expression import FieldKind, RuleExpression, RuleSyntaxError
from models.risk.features import FEATURE_NAMES

#: Payment record fields a rule may use, with their kind.
PAYMENT_FIELDS: dict[str, FieldKind] = {
    "amount": "number",
    "currency": "text",
    "method": "text",
    "status": "text",
    "ip_country": "text",
    "billing_country": "text",
    "card_fingerprint": "text",
    "device_id": "text",
    "customer_id": "text",
}

#: Every name a rule expression may use: payment fields and risk features.
RULE_FIELDS: dict[str, FieldKind] = {**PAYMENT_FIELDS, **{name: "number" for name in FEATURE_NAMES}}

ScoreFloor = Annotated[float, Field(gt=0.0, le=1.0)]


class RiskRule(BaseModel):
    """One analyst rule: when ``expression`` holds, apply ``action``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
    expression: Annotated[str, Field(min_length=1, max_length=1000)]
    action: Literal["review", "block"] | ScoreFloor
    enabled: bool = True
    description: Annotated[str, Field(max_length=256)] = ""

    _condition: RuleExpression = PrivateAttr()

    @field_validator("expression")
    @classmethod
    def _valid_expression(cls, source: str) -> str:
        try:
            RuleExpression(source, RULE_FIELDS)
        except RuleSyntaxError as exc:
            raise ValueError(str(exc)) from None
        return source

    def model_post_init(self, context: Any) -> None:
        """Compile the (already validated) expression once."""
        self._condition = RuleExpression(self.expression, RULE_FIELDS)

    def matches(self, values: Mapping[str, Any]) -> bool:
        """Whether the rule's condition holds for a payment's fields and features."""
        return self._condition.evaluate(values)

    def reason(self) -> str:
        """Readable text for a hit of this rule."""
        return f"rule {self.id}: {self.description or self.expression}"


class RuleBook:
    """The analyst rules in force, evaluated against every scored payment."""

    STATE_MODEL = "RuleBook"
    STATE_VERSION = 1

    def __init__(self, max_rules: int = 500) -> None:
        self.max_rules = max_rules
        self._rules: dict[str, RiskRule] = {}
        #: Rule id -> (payments it raised on, the last error), since the rule was put.
        self.failures: dict[str, tuple[int, str]] = {}

    @property
    def rules(self) -> list[RiskRule]:
        """All rules, in the order they were first added."""
        return list(self._rules.values())

    def put(self, rule: RiskRule) -> None:
        """Add a rule, or replace the rule with the same id."""
        if rule.id not in self._rules and len(self._rules) >= self.max_rules:
            raise ValueError(f"the rule book is full ({self.max_rules} rules)")
        self._rules[rule.id] = rule
        self.failures.pop(rule.id, None)

    def load(self, raw_rules: Iterable[Mapping[str, Any]]) -> dict[str, str]:
        """Validate and put each raw rule; returns ``{rule id or position: reason}`` for the rejected."""
        rejected = {}
        for position, raw in enumerate(raw_rules):
            key = str(raw.get("id", f"#{position}")) if isinstance(raw, Mapping) else f"#{position}"
            try:
                self.put(RiskRule.model_validate(raw))
            except ValidationError as exc:
                rejected[key] = _reason(exc)
            except ValueError as exc:
                rejected[key] = str(exc)
        return rejected

    def pause(self, rule_id: str) -> None:
        """Stop evaluating a rule without deleting it."""
        self.put(self._get(rule_id).model_copy(update={"enabled": False}))

    def resume(self, rule_id: str) -> None:
        """Evaluate a paused rule again."""
        self.put(self._get(rule_id).model_copy(update={"enabled": True}))

    def delete(self, rule_id: str) -> None:
        """Remove a rule."""
        self._get(rule_id)
        del self._rules[rule_id]
        self.failures.pop(rule_id, None)

    def evaluate(self, features: Mapping[str, float], payment: Mapping[str, Any]) -> list[RiskRule]:
        """The enabled rules that hold for a payment (its record fields and its features).

        A rule that raises is not hit, and its failure is counted.
        """
        values = {**{name: payment[name] for name in PAYMENT_FIELDS if name in payment}, **features}
        return [rule for rule in self._rules.values() if rule.enabled and self._holds(rule, values)]

    def failure_reasons(self) -> dict[str, str]:
        """``{rule id: reason}`` for the rules that raised while evaluated: how often, and the last error.

        >>> class Unreadable(float):
        ...     def __gt__(self, other): raise ArithmeticError("unreadable amount")
        >>> book = RuleBook()
        >>> book.put(RiskRule(id="big", expression="amount > 1000", action="review"))
        >>> book.evaluate({}, {"amount": Unreadable(5000.0)})
        []
        >>> book.failure_reasons()
        {'big': 'raised on 1 payment(s), taken as not hit; last: ArithmeticError: unreadable amount'}
        """
        return {rule_id: f"raised on {count} payment(s), taken as not hit; last: {error}"
                for rule_id, (count, error) in self.failures.items()}

    def state_dict(self) -> dict[str, Any]:
        """Plain-data checkpoint: the rules as dicts."""
        return {
            "model": self.STATE_MODEL,
            "version": self.STATE_VERSION,
            "max_rules": self.max_rules,
            "rules": [rule.model_dump() for rule in self._rules.values()],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """Rebuild the rule book from :meth:`state_dict` output."""
        check_state_tag(state, cls.STATE_MODEL, cls.STATE_VERSION)
        book = cls(state["max_rules"])
        for raw in state["rules"]:
            book.put(RiskRule.model_validate(raw))
        return book

    def _holds(self, rule: RiskRule, values: Mapping[str, Any]) -> bool:
        try:
            return rule.matches(values)
        except Exception as exc:  # one rule's failure must not stop scoring
            count, _ = self.failures.get(rule.id, (0, ""))
            self.failures[rule.id] = (count + 1, error_reason(exc))
            return False

    def _get(self, rule_id: str) -> RiskRule:
        rule = self._rules.get(rule_id)
        if rule is None:
            raise KeyError(f"no rule {rule_id!r}")
        return rule


def error_reason(exc: Exception) -> str:
    """Why ``exc`` happened, on one line: its message, named by its type unless a ``ValueError`` (a reason already).

    >>> error_reason(RecursionError("maximum recursion depth\\nexceeded"))
    'RecursionError: maximum recursion depth exceeded'
    >>> error_reason(ValueError("not a JSON object: a list"))
    'not a JSON object: a list'
    """
    return _one_line(str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _reason(exc: ValidationError) -> str:
    """One line per problem, ``field: message``, without pydantic's boilerplate."""
    problems = []
    for error in exc.errors(include_url=False, include_context=False):
        where = ".".join(str(part) for part in error["loc"] if not str(part).startswith(("literal[", "constrained")))
        message = error["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: {message}" if where else message)
    return _one_line("; ".join(dict.fromkeys(problems)))
