"""A tiny, safe condition language for analyst rules.

An expression is parsed with Python's :mod:`ast` and accepted only if every
node is on a strict whitelist: ``and`` / ``or`` / ``not``, comparisons
(``== != < <= > >=``, and ``in`` / ``not in`` a literal list), numbers
(a leading minus allowed), strings, ``True`` / ``False`` and the names of known
fields. Anything else — calls, attributes, subscripts, arithmetic, lambdas,
f-strings — is rejected with a readable reason, as are unknown fields and
comparisons of a number with text. An accepted expression is compiled into
plain closures; nothing is ever passed to :func:`eval`.

Whatever the text, a problem is a :class:`RuleSyntaxError` with a one-line
message, never another exception: an expression has at most
``MAX_EXPRESSION_LENGTH`` characters and ``MAX_DEPTH`` levels of nesting, at
most ``MAX_UNARY_RUN`` ``not`` / ``-`` in a row, and a number at most
``MAX_NUMBER_CHARACTERS`` characters and a magnitude of at most
``MAX_NUMBER_MAGNITUDE`` (well inside a float's exact integers).

At evaluation, a comparison involving a missing field (absent or ``None``) is
false, and a bare numeric field is true when non-zero.

>>> fields = {"amount": "number", "ip_country": "text", "billing_country": "text", "new_card": "number"}
>>> rule = RuleExpression('amount > 1000 and ip_country != billing_country', fields)
>>> rule.evaluate({"amount": 1500.0, "ip_country": "NG", "billing_country": "DE"})
True
>>> rule.evaluate({"amount": 1500.0, "billing_country": "DE"})
False
>>> RuleExpression("amount > 1000 and __import__('os')", fields)
Traceback (most recent call last):
...
models.risk.expression.RuleSyntaxError: function calls are not allowed (at column 19)
>>> RuleExpression("amout > 10", fields)
Traceback (most recent call last):
...
models.risk.expression.RuleSyntaxError: unknown field 'amout' (did you mean 'amount'?)
>>> RuleExpression("amount > " + "9" * 400, fields)
Traceback (most recent call last):
...
models.risk.expression.RuleSyntaxError: a number has at most 30 characters (at column 10)
>>> RuleExpression("amount > 1e16", fields)
Traceback (most recent call last):
...
models.risk.expression.RuleSyntaxError: a number must be between -1e+15 and 1e+15 (at column 10)
>>> RuleExpression("amount > " + "-" * 980 + "1", fields)
Traceback (most recent call last):
...
models.risk.expression.RuleSyntaxError: at most 3 unary operators (not, -) in a row (at column 10)
"""

from __future__ import annotations

import ast
import difflib
import operator
import warnings
from collections.abc import Callable, Mapping
from typing import Any, Literal

FieldKind = Literal["number", "text"]
Evaluator = Callable[[Mapping[str, Any]], Any]

MAX_EXPRESSION_LENGTH = 1000
MAX_DEPTH = 40
MAX_UNARY_RUN = 3
MAX_NUMBER_CHARACTERS = 30
MAX_NUMBER_MAGNITUDE = 1e15

_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
_ORDERING = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)
_MEMBERSHIP = (ast.In, ast.NotIn)

_FORBIDDEN_TEXT: dict[type[ast.AST], str] = {
    ast.Call: "function calls are not allowed",
    ast.Attribute: "attribute access is not allowed",
    ast.Subscript: "indexing is not allowed",
    ast.BinOp: "arithmetic is not allowed",
    ast.Lambda: "lambdas are not allowed",
    ast.IfExp: "conditional expressions are not allowed",
    ast.JoinedStr: "f-strings are not allowed",
    ast.NamedExpr: "assignments are not allowed",
    ast.comprehension: "comprehensions are not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "comprehensions are not allowed",
}


class RuleSyntaxError(ValueError):
    """An expression was rejected; the message says why."""


class RuleExpression:
    """A validated, compiled condition over a dict of named values."""

    def __init__(self, source: str, fields: Mapping[str, FieldKind]) -> None:
        self.source = source
        self._fields = fields
        self.fields_used: set[str] = set()
        tree = _parse(source)
        _check_unary_runs(tree)
        self._evaluate = self._condition(tree.body, depth=0)

    def evaluate(self, values: Mapping[str, Any]) -> bool:
        """Whether the condition holds for ``values`` (missing fields make comparisons false)."""
        return bool(self._evaluate(values))

    def _condition(self, node: ast.expr, depth: int) -> Evaluator:
        """Compile a node used as a truth value."""
        _check_depth(node, depth)
        if isinstance(node, ast.BoolOp):
            parts = [self._condition(value, depth + 1) for value in node.values]
            if isinstance(node.op, ast.And):
                return lambda values: all(part(values) for part in parts)
            return lambda values: any(part(values) for part in parts)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            inner = self._condition(node.operand, depth + 1)
            return lambda values: not inner(values)
        if isinstance(node, ast.Compare):
            return self._comparison(node, depth)
        kind, evaluate = self._operand(node, depth)
        if kind != "number":
            raise _reject(node, f"{ast.unparse(node)!r} is text, not a condition; compare it, e.g. == \"XX\"")
        return lambda values: _truthy(evaluate(values))

    def _comparison(self, node: ast.Compare, depth: int) -> Evaluator:
        operands = [self._operand(node.left, depth + 1)]
        steps = []
        for left, op, right in zip([node.left, *node.comparators], node.ops, node.comparators):
            if type(op) not in _COMPARE:
                raise _reject(node, "'is' / 'is not' are not allowed; use == or !=")
            left_kind = operands[-1][0]
            if isinstance(op, _MEMBERSHIP):
                right_kind, right_eval = self._literal_list(right, depth + 1)
                if right_kind not in (f"{left_kind} list", "empty list"):
                    raise _reject(right, f"'in' needs a list of {left_kind}s")
            else:
                right_kind, right_eval = self._operand(right, depth + 1)
                if right_kind != left_kind:
                    raise _reject(node, f"cannot compare {left_kind} with {right_kind} in {_step(left, op, right)!r}")
                if isinstance(op, _ORDERING) and left_kind != "number":
                    raise _reject(node, f"text can only be compared with == or != in {_step(left, op, right)!r}")
            operands.append((right_kind, right_eval))
            steps.append(_COMPARE[type(op)])
        evaluators = [evaluate for _, evaluate in operands]

        def compare(values: Mapping[str, Any]) -> bool:
            resolved = [evaluate(values) for evaluate in evaluators]
            if any(value is None for value in resolved):
                return False
            return all(step(a, b) for step, a, b in zip(steps, resolved, resolved[1:]))

        return compare

    def _operand(self, node: ast.expr, depth: int) -> tuple[str, Evaluator]:
        """Compile a field or a literal; returns its kind (``number`` / ``text``) and evaluator."""
        _check_depth(node, depth)
        if isinstance(node, ast.Name):
            kind = self._fields.get(node.id)
            if kind is None:
                close = difflib.get_close_matches(node.id, list(self._fields), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise RuleSyntaxError(f"unknown field {node.id!r}{hint}")
            self.fields_used.add(node.id)
            name = node.id
            return kind, lambda values: _value_of(values, name, kind)
        constant = _constant(node)
        kind = "text" if isinstance(constant, str) else "number"
        return kind, lambda values: constant

    def _literal_list(self, node: ast.expr, depth: int) -> tuple[str, Evaluator]:
        _check_depth(node, depth)
        if not isinstance(node, (ast.List, ast.Tuple)):
            raise _reject(node, "'in' needs a literal list, e.g. ip_country in (\"NG\", \"RU\")")
        items = [_constant(element) for element in node.elts]
        kinds = {"text" if isinstance(item, str) else "number" for item in items}
        if len(kinds) > 1:
            raise _reject(node, "a list must hold only numbers or only strings")
        frozen = frozenset(items)
        return (f"{kinds.pop()} list" if kinds else "empty list"), lambda values: frozen


def _parse(source: str) -> ast.Expression:
    if not isinstance(source, str) or not source.strip():
        raise RuleSyntaxError("the expression is empty")
    if len(source) > MAX_EXPRESSION_LENGTH:
        raise RuleSyntaxError(f"the expression is longer than {MAX_EXPRESSION_LENGTH} characters")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        where = f" (at column {exc.offset})" if exc.offset else ""
        raise RuleSyntaxError(f"bad syntax: {exc.msg}{where}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise RuleSyntaxError(f"bad syntax: {type(exc).__name__}") from None


def _check_unary_runs(tree: ast.Expression) -> None:
    """Reject a run of more than ``MAX_UNARY_RUN`` unary operators, without recursing into it."""
    for node in ast.walk(tree):
        run, inner = 0, node
        while isinstance(inner, ast.UnaryOp) and run <= MAX_UNARY_RUN:
            run, inner = run + 1, inner.operand
        if run > MAX_UNARY_RUN:
            raise _reject(node, f"at most {MAX_UNARY_RUN} unary operators (not, -) in a row")


def _constant(node: ast.expr) -> Any:
    """A whitelisted literal: a bounded number (optionally negated), a string or a bool."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        value = _constant(node.operand)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _reject(node, "a minus sign is only allowed before a number")
        return -value
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, (str, bool)):
            return value
        if isinstance(value, (int, float)):
            if node.end_col_offset - node.col_offset > MAX_NUMBER_CHARACTERS:
                raise _reject(node, f"a number has at most {MAX_NUMBER_CHARACTERS} characters")
            if abs(value) > MAX_NUMBER_MAGNITUDE:
                raise _reject(node, f"a number must be between -{MAX_NUMBER_MAGNITUDE:g} and {MAX_NUMBER_MAGNITUDE:g}")
            return value
        raise _reject(node, f"the literal {ast.unparse(node)} is not allowed (numbers, strings, True, False only)")
    raise _reject(node, _FORBIDDEN_TEXT.get(type(node), f"{type(node).__name__} expressions are not allowed here"))


def _reject(node: ast.AST, reason: str) -> RuleSyntaxError:
    column = getattr(node, "col_offset", None)
    where = f" (at column {column + 1})" if column is not None else ""
    return RuleSyntaxError(reason + where)


def _step(left: ast.expr, op: ast.cmpop, right: ast.expr) -> str:
    """The text of one comparison step (its operands are compiled, hence small), for messages."""
    return ast.unparse(ast.Compare(left=left, ops=[op], comparators=[right]))


def _check_depth(node: ast.AST, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise _reject(node, f"the expression is nested deeper than {MAX_DEPTH} levels")


def _value_of(values: Mapping[str, Any], name: str, kind: FieldKind) -> Any:
    value = values.get(name)
    if kind == "number":
        return value if isinstance(value, (int, float)) else None
    return value if isinstance(value, str) else None


def _truthy(value: Any) -> bool:
    return value is not None and value != 0
