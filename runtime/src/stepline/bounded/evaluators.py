"""What runs inside a worker (:mod:`stepline.bounded.worker`): CEL and JMESPath, with
their compiled forms cached per worker and their results checked for size. The
libraries are the functions' own (the Condition and Transform folders install them);
each is imported here when installed, before the worker takes its first call."""

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
