"""What runs inside a worker (:mod:`stepline.bounded.worker`): CEL and JMESPath, with
their compiled forms cached per worker and their results checked for size. The
libraries are the functions' own (the Condition and Transform folders install them);
each is imported here when installed, before the worker takes its first call.

A JMESPath expression *bounded by its shape* needs no worker (:func:`jmespath_fast`):
without multi-selects (``[a, a]``, ``{k: a}``: the only way to repeat a value, which
``[@, @][]`` doubles per stage) and with only the functions whose output is no larger
than their input, every node works on parts of the input, so the work is linear in
the input times the expression's length, and the result is no larger than the input."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from stepline.bounded import EXPRESSION_RESULT_MAX_BYTES
from stepline.errors import PermanentError

try:
    import cel
except ImportError:  # a function image without CEL never sends CEL here
    cel = None
try:
    import jmespath
    from jmespath.exceptions import JMESPathError
except ImportError:
    jmespath = None

CACHE_SIZE = 1024
FAST_MAX_CHARS = 1_000
_FAST_JMESPATH_NODES = frozenset({
    "and_expression", "comparator", "current", "expref", "field", "filter_projection",
    "flatten", "function_expression", "identity", "index", "index_expression", "literal",
    "not_expression", "or_expression", "pipe", "projection", "slice", "subexpression",
    "value_projection",
})
_FAST_JMESPATH_FUNCTIONS = frozenset({
    "abs", "avg", "ceil", "contains", "ends_with", "floor", "keys", "length", "map", "max",
    "max_by", "min", "min_by", "not_null", "reverse", "sort", "sort_by", "starts_with",
    "sum", "to_array", "to_number", "type", "values",
})


@lru_cache(maxsize=CACHE_SIZE)
def _cel(expression: str) -> Any:
    return cel.compile(expression)


def cel_value(expression: str, variables: dict[str, Any]) -> Any:
    try:
        program = _cel(expression)
    except (ValueError, RuntimeError) as exc:
        raise PermanentError(f"`when` does not compile: {exc}") from exc
    try:
        result = program.execute(variables)
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise PermanentError(f"`when` {expression!r} failed: {type(exc).__name__}: {exc}") from exc
    return _sized(result, f"`when` {expression!r}")


@lru_cache(maxsize=CACHE_SIZE)
def _jmespath(expression: str) -> Any:
    return jmespath.compile(expression)


@lru_cache(maxsize=CACHE_SIZE)
def jmespath_fast(expression: str) -> Any | None:
    """The compiled expression when its shape bounds it (see above), else None."""
    if jmespath is None or len(expression) > FAST_MAX_CHARS:
        return None
    try:
        program = _jmespath(expression)
    except (JMESPathError, RecursionError):
        return None  # the worker says what is wrong with it
    return program if _bounded_shape(program.parsed) else None


def _bounded_shape(node: Any) -> bool:
    if not isinstance(node, dict):
        return True  # a slice's bounds
    if node["type"] not in _FAST_JMESPATH_NODES:
        return False
    if node["type"] == "function_expression" and node["value"] not in _FAST_JMESPATH_FUNCTIONS:
        return False
    return all(_bounded_shape(child) for child in node["children"])


def jmespath_in_process(program: Any, data: Any) -> Any:
    try:
        return program.search(data)
    except JMESPathError as exc:
        raise PermanentError(f"JMESPath {program.expression!r} failed: {exc}") from exc


def jmespath_value(expression: str, data: Any) -> Any:
    try:
        program = _jmespath(expression)
    except JMESPathError as exc:
        raise PermanentError(f"JMESPath {expression!r} does not compile: {exc}") from exc
    try:
        result = program.search(data)
    except JMESPathError as exc:
        raise PermanentError(f"JMESPath {expression!r} failed: {exc}") from exc
    return _sized(result, f"JMESPath {expression!r}")


def _sized(value: Any, what: str) -> Any:
    """``value`` as JSON no larger than the limit (shared references, which JMESPath's
    ``[@, @]`` makes, are counted as often as they would be written)."""
    try:
        encoded = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise PermanentError(f"{what} gave {type(value).__name__}, which is not JSON") from exc
    if len(encoded) > EXPRESSION_RESULT_MAX_BYTES:
        raise PermanentError(f"{what}: result larger than {EXPRESSION_RESULT_MAX_BYTES} bytes")
    return json.loads(encoded)
