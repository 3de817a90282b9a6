"""Analysts' rules: a small, safe expression language over the documented features, compiled once.

A rule set is a JSON object (``rules.json`` in a repository version of kind
``data``, see ``npusuite fraud rules add``)::

    {"rules": [{"name": "atm-abroad-burst", "action": "review",
                "when": "channel == \\"atm\\" and cnt_1h > 5 and new_country"}]}

Rules:

- The grammar is restricted and parsed here (no ``eval``, no Python names)::

      expr := and ("or" and)*          and := not ("and" not)*
      not  := "not" not | cmp          cmp := sum [op sum | ["not"] "in" "[" literal ("," literal)* "]"]
      sum  := prod (("+"|"-") prod)*   prod := unary (("*"|"/") unary)*
      unary := "-" unary | NUMBER | STRING | true | false | IDENT | "(" expr ")"

  with ``op`` one of ``== != < <= > >=``.
- Identifiers are the features of :data:`~npusuite.fraud.features.FEATURE_NAMES`
  **in their documented unit** (``docs/fraud-api.md``; ``cnt_1h`` is a count,
  ``geo_km_log`` kilometres, ``amount_to_median_log`` a ratio, a flag 0 or 1:
  logs are undone so analysts never write ``log1p``), and the transaction's
  fields :data:`TX_FIELDS` (``amount``, ``hour``; ``channel``, ``country``,
  ``currency``, ``merchant_category``, ``merchant_id``).  Anything else is
  refused with the nearest known name.
- Types are checked when a rule is compiled: strings compare only with ``==``,
  ``!=`` and ``in`` against strings; arithmetic and ordering take numbers; a
  number where a condition is expected means "not zero" (so ``new_country``
  reads as a condition).  The whole rule must be a condition.
- Hostile input is refused with a one-line :class:`RuleError` before anything
  runs: more than :data:`MAX_RULES` rules, an expression over
  :data:`MAX_EXPRESSION_CHARS` characters or :data:`MAX_TOKENS` tokens,
  nesting deeper than :data:`MAX_DEPTH`, duplicate names, an unknown action.
- Evaluation is vectorised over a batch (numpy, one array per referenced
  column) and total: division by zero gives NaN (an overflow inf), and a
  comparison with NaN is false, so a rule dividing by zero does not fire; it
  never raises.
- Pure: no I/O.  A rule's action raises the decision to at least that level
  (``review`` or ``decline``); the scorer adds the reason ``rule_hit``.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from npusuite.fraud.features import FEATURE_NAMES
from npusuite.fraud.schema import Transaction
from npusuite.platform.contracts.parsing import parse_record
from npusuite.platform.errors import SchemaError, UserError

logger = logging.getLogger(__name__)

RULES_FILE = "rules.json"
MAX_RULES = 200
MAX_EXPRESSION_CHARS = 1000
MAX_TOKENS = 400
MAX_DEPTH = 32
MAX_LIST_ITEMS = 100
MAX_RULE_SET_BYTES = 256 * 1024
Action = Literal["review", "decline"]

#: Features stored as log1p of a count, amount, age (s) or distance: rules see expm1 of them.
_LOG1P = frozenset({"log_history", "cnt_1m", "cnt_1h", "cnt_24h", "cnt_7d", "sum_1m", "sum_1h", "sum_24h", "sum_7d",
                    "merchant_seen_log", "device_age_log", "ip_net_age_log", "since_prev_log", "geo_km_log",
                    "geo_speed_log", "atm_sum_24h"})
#: Features stored as the log of an amount or a ratio: rules see exp of them.
_LOG = frozenset({"log_amount", "amount_to_max_log", "amount_to_median_log", "transfer_to_max_log"})
#: Transaction fields a rule may name, with their type.
TX_FIELDS: dict[str, str] = {"amount": "num", "hour": "num", "channel": "str", "country": "str", "currency": "str",
                             "merchant_category": "str", "merchant_id": "str"}
KNOWN_NAMES: tuple[str, ...] = (*FEATURE_NAMES, *TX_FIELDS)
_FEATURE_INDEX = {name: i for i, name in enumerate(FEATURE_NAMES)}


class RuleError(UserError):
    """A rule or rule set that does not parse, names an unknown feature, or breaks a limit."""


class RuleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$", description="Shown in reasons and metrics.")
    when: str = Field(min_length=1, max_length=MAX_EXPRESSION_CHARS, description="The condition (grammar above).")
    action: Action = "review"
    description: str | None = Field(default=None, max_length=500)


class RuleSetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: list[RuleSpec] = Field(max_length=MAX_RULES)


# ---- tokens -----------------------------------------------------------------------------------------
_TOKEN = re.compile(r"""\s*(?:(?P<num>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|(?P<str>"[^"\\]*"|'[^'\\]*')
                        |(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>==|!=|<=|>=|[<>()\[\],+\-*/]))""", re.VERBOSE)
_KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false"})


@dataclass(frozen=True)
class _Tok:
    kind: str  # num, str, name, op, kw, end
    text: str
    col: int


def _tokens(text: str) -> list[_Tok]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            ch = text[pos:].lstrip()[:1]
            raise RuleError(f"unexpected character {ch!r} at column {len(text) - len(text[pos:].lstrip()) + 1}")
        kind = m.lastgroup or "op"
        word, col = m.group(kind), m.start(kind) + 1
        if kind == "name" and word in _KEYWORDS:
            kind = "kw"
        out.append(_Tok(kind, word, col))
        if len(out) > MAX_TOKENS:
            raise RuleError(f"more than {MAX_TOKENS} tokens")
        pos = m.end()
    out.append(_Tok("end", "", len(text) + 1))
    return out


# ---- compiled nodes: (type, batch -> array) ----------------------------------------------------------
Batch = dict[str, np.ndarray]
Node = tuple[str, Callable[[Batch], np.ndarray]]  # type: "num" | "str" | "bool"
_CMP = {"==": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal}


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # x / 0 is NaN (never inf): "amount / 0 > 1" must not fire, and every comparison with NaN is false.
    return np.where(b == 0, np.nan, np.divide(a, np.where(b == 0, 1.0, b)))


_ARITH = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": _divide}


class _Parser:
    """Recursive descent over the tokens; builds closures, checking types and names as it goes."""

    def __init__(self, text: str):
        self.toks = _tokens(text)
        self.i = 0
        self.depth = 0
        self.names: set[str] = set()

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def expect(self, text: str) -> None:
        tok = self.take()
        if tok.text != text or tok.kind not in ("op", "kw"):
            raise RuleError(f"expected {text!r} at column {tok.col}, found {tok.text or 'the end'!r}")

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise RuleError(f"nested deeper than {MAX_DEPTH} levels")

    def parse(self) -> Callable[[Batch], np.ndarray]:
        node = self.expr()
        tok = self.peek()
        if tok.kind != "end":
            raise RuleError(f"unexpected {tok.text!r} at column {tok.col}")
        return _as_bool(node, "the rule")

    def expr(self) -> Node:
        self.nest()
        node = self.conj()
        while self.peek().text == "or" and self.peek().kind == "kw":
            self.take()
            a, b = _as_bool(node, "'or'"), _as_bool(self.conj(), "'or'")
            node = ("bool", lambda env, a=a, b=b: a(env) | b(env))
        self.depth -= 1
        return node

    def conj(self) -> Node:
        node = self.negation()
        while self.peek().text == "and" and self.peek().kind == "kw":
            self.take()
            a, b = _as_bool(node, "'and'"), _as_bool(self.negation(), "'and'")
            node = ("bool", lambda env, a=a, b=b: a(env) & b(env))
        return node

    def negation(self) -> Node:
        if self.peek().text == "not" and self.peek().kind == "kw":
            self.take()
            self.nest()
            inner = _as_bool(self.negation(), "'not'")
            self.depth -= 1
            return "bool", lambda env: ~inner(env)
        return self.comparison()

    def comparison(self) -> Node:
        left = self.sum()
        tok = self.peek()
        if tok.kind == "op" and tok.text in _CMP:
            self.take()
            return _compare(tok, left, self.sum())
        negate = tok.kind == "kw" and tok.text == "not" and self.toks[self.i + 1].text == "in"
        if negate or (tok.kind == "kw" and tok.text == "in"):
            self.i += 2 if negate else 1
            return self.membership(left, negate, tok.col)
        return left

    def membership(self, left: Node, negate: bool, col: int) -> Node:
        self.expect("[")
        items = [self.literal()]
        while self.peek().text == ",":
            self.take()
            items.append(self.literal())
            if len(items) > MAX_LIST_ITEMS:
                raise RuleError(f"a list of more than {MAX_LIST_ITEMS} items at column {col}")
        self.expect("]")
        kinds = {k for k, _ in items}
        if kinds != {left[0]} or left[0] == "bool":
            raise RuleError(f"'in' at column {col} compares a {left[0]} with a list of {'/'.join(sorted(kinds))}")
        values = frozenset(v for _, v in items)
        fn = left[1]
        if left[0] == "str":
            def test(env: Batch) -> np.ndarray:
                col_values = fn(env)
                return np.fromiter((v in values for v in col_values), dtype=bool, count=len(col_values))
        else:
            wanted = np.array(sorted(values), dtype=np.float64)
            def test(env: Batch) -> np.ndarray:
                return np.isin(fn(env), wanted)
        return "bool", (lambda env: ~test(env)) if negate else test

    def literal(self) -> tuple[str, object]:
        tok = self.take()
        sign = 1.0
        if tok.text == "-" and tok.kind == "op":
            sign, tok = -1.0, self.take()
        if tok.kind == "num":
            return "num", sign * _number(tok)
        if tok.kind == "str" and sign == 1.0:
            return "str", tok.text[1:-1]
        raise RuleError(f"expected a number or a string in the list at column {tok.col}")

    def sum(self) -> Node:
        node = self.product()
        while self.peek().kind == "op" and self.peek().text in "+-":
            tok = self.take()
            node = _arith(tok, node, self.product())
        return node

    def product(self) -> Node:
        node = self.unary()
        while self.peek().kind == "op" and self.peek().text in "*/":
            tok = self.take()
            node = _arith(tok, node, self.unary())
        return node

    def unary(self) -> Node:
        tok = self.take()
        if tok.kind == "op" and tok.text == "-":
            self.nest()
            inner = self.unary()
            self.depth -= 1
            if inner[0] != "num":
                raise RuleError(f"'-' at column {tok.col} needs a number, not a {inner[0]}")
            fn = inner[1]
            return "num", lambda env: -fn(env)
        if tok.kind == "op" and tok.text == "(":
            node = self.expr()
            self.expect(")")
            return node
        if tok.kind == "num":
            value = _number(tok)
            return "num", lambda env: np.full(env["__n__"].shape, value)
        if tok.kind == "str":
            text = tok.text[1:-1]
            return "str", lambda env: np.full(env["__n__"].shape, text, dtype=object)
        if tok.kind == "kw" and tok.text in ("true", "false"):
            flag = tok.text == "true"
            return "bool", lambda env: np.full(env["__n__"].shape, flag)
        if tok.kind == "name":
            return self.identifier(tok)
        raise RuleError(f"unexpected {tok.text or 'end of rule'!r} at column {tok.col}")

    def identifier(self, tok: _Tok) -> Node:
        name = tok.text
        if name not in _FEATURE_INDEX and name not in TX_FIELDS:
            close = difflib.get_close_matches(name, KNOWN_NAMES, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise RuleError(f"unknown feature {name!r} at column {tok.col}{hint}; see docs/fraud-api.md")
        self.names.add(name)
        return TX_FIELDS.get(name, "num"), lambda env: env[name]


def _number(tok: _Tok) -> float:
    value = float(tok.text)
    if not math.isfinite(value):
        raise RuleError(f"number {tok.text[:20]!r} at column {tok.col} is out of range")
    return value


def _as_bool(node: Node, where: str) -> Callable[[Batch], np.ndarray]:
    kind, fn = node
    if kind == "bool":
        return fn
    if kind == "num":  # a number as a condition: not zero (flags read as conditions); NaN is not a hit
        return lambda env: np.nan_to_num(fn(env), nan=0.0) != 0.0
    raise RuleError(f"{where} needs a condition, not a string")


def _compare(tok: _Tok, left: Node, right: Node) -> Node:
    ufunc = _CMP[tok.text]
    kinds = (left[0], right[0])
    if kinds == ("num", "num") or (kinds == ("str", "str") and tok.text in ("==", "!=")) or \
            (kinds == ("bool", "bool") and tok.text in ("==", "!=")):
        a, b = left[1], right[1]
        return "bool", lambda env: np.asarray(ufunc(a(env), b(env)), dtype=bool)
    raise RuleError(f"{tok.text!r} at column {tok.col} cannot compare a {kinds[0]} with a {kinds[1]}")


def _arith(tok: _Tok, left: Node, right: Node) -> Node:
    if left[0] != "num" or right[0] != "num":
        raise RuleError(f"{tok.text!r} at column {tok.col} needs numbers, not a {left[0]} and a {right[0]}")
    ufunc, a, b = _ARITH[tok.text], left[1], right[1]
    return "num", lambda env: ufunc(a(env), b(env))


# ---- rules and rule sets -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    name: str
    when: str
    action: Action
    names: frozenset[str]
    test: Callable[[Batch], np.ndarray]


def compile_rule(spec: RuleSpec) -> Rule:
    """Parse and type-check one rule.  Raises RuleError naming the rule."""
    try:
        parser = _Parser(spec.when)
        test = parser.parse()
    except RuleError as exc:
        raise RuleError(f"rule {spec.name!r}: {exc}") from None
    except RecursionError:  # belt and braces: MAX_DEPTH keeps the parser far below the interpreter's limit
        raise RuleError(f"rule {spec.name!r}: nested too deeply") from None
    return Rule(spec.name, spec.when, spec.action, frozenset(parser.names), test)


@dataclass(frozen=True)
class RuleSet:
    """Compiled rules; :meth:`evaluate` gives the hit matrix of a batch."""

    rules: tuple[Rule, ...]
    ref: str = "rules@local"

    def evaluate(self, transactions: Sequence[Transaction], x: np.ndarray) -> np.ndarray:
        """(rows x rules) booleans: which rule fires on which transaction.  Never raises on values."""
        n = len(transactions)
        if not self.rules or n == 0:
            return np.zeros((n, len(self.rules)), dtype=bool)
        env = _environment(transactions, np.asarray(x), set().union(*(r.names for r in self.rules)))
        out = np.zeros((n, len(self.rules)), dtype=bool)
        with np.errstate(all="ignore"):  # x/0 -> inf or nan: the comparison is then false, by the rules above
            for j, rule in enumerate(self.rules):
                out[:, j] = np.broadcast_to(rule.test(env), (n,))
        return out


def decoded(name: str, column: np.ndarray) -> np.ndarray:
    col = column.astype(np.float64)
    with np.errstate(all="ignore"):
        if name in _LOG1P:
            return np.expm1(np.minimum(col, 700.0))
        if name in _LOG:
            return np.exp(np.clip(col, -700.0, 700.0))
    return col


def _environment(transactions: Sequence[Transaction], x: np.ndarray, names: set[str]) -> Batch:
    env: Batch = {"__n__": np.zeros(len(transactions))}
    for name in names:
        if name in _FEATURE_INDEX:
            env[name] = decoded(name, x[:, _FEATURE_INDEX[name]])
        elif name == "amount":
            env[name] = np.array([tx.amount for tx in transactions], dtype=np.float64)
        elif name == "hour":
            env[name] = np.array([tx.timestamp.hour for tx in transactions], dtype=np.float64)
        else:
            env[name] = np.array([getattr(tx, name) for tx in transactions], dtype=object)
    return env


def compile_rule_set(spec: RuleSetSpec, ref: str = "rules@local") -> RuleSet:
    """Compile every rule.  Raises RuleError on the first bad one or on a duplicate name."""
    seen: set[str] = set()
    for r in spec.rules:
        if r.name in seen:
            raise RuleError(f"two rules are named {r.name!r}")
        seen.add(r.name)
    return RuleSet(tuple(compile_rule(r) for r in spec.rules), ref)


def parse_rule_set(raw: bytes | str | dict, ref: str = "rules@local") -> RuleSet:
    """A rule-set document (JSON) compiled.  Raises RuleError, one line."""
    try:
        spec = parse_record(RuleSetSpec, raw, max_bytes=MAX_RULE_SET_BYTES, whole="rule set")
    except SchemaError as exc:
        raise RuleError(f"rule set: {exc}") from None
    return compile_rule_set(spec, ref)


def rule_set_document(rules: RuleSet) -> str:
    """The JSON document of a compiled rule set (what ``rules.json`` holds)."""
    return json.dumps({"rules": [{"name": r.name, "when": r.when, "action": r.action} for r in rules.rules]},
                      indent=2) + "\n"
