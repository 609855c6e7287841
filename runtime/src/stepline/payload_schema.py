"""A Webhook's ``payload_schema``: JSON Schema 2020-12 a tenant writes, so its regular
expressions run on RE2 (linear time: no pattern, such as ``^(a+)+$``, can backtrack
for ever). ``pattern``, ``patternProperties`` and ``additionalProperties`` (which reads
the ``patternProperties``) are the validator's keywords re-bound to RE2.

When a workflow is stored (:func:`schema_problems`) the schema must be valid, every
pattern must compile on RE2 (no backreferences, no lookaround), and
``unevaluatedProperties`` may not meet ``patternProperties`` (that keyword matches them
with Python's backtracking engine). A payload is checked (:func:`payload_problems`) in
a worker of :mod:`stepline.bounded`, since a schema can still be slow by its size or
its ``$ref``s."""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import re2
from jsonschema import Draft202012Validator, ValidationError, validators
from jsonschema.exceptions import SchemaError
from referencing.exceptions import Unresolvable

PATTERN_CACHE_SIZE = 1024
PATTERN_MAX_MEM = 8 << 20  # RE2 refuses a pattern whose automaton would need more
# keywords whose values are data, not schemas: a "pattern" in them is not one
_DATA_KEYWORDS = frozenset({"const", "enum", "default", "examples"})
# keywords whose values map a name (not a keyword) to a subschema
_NAMED_SUBSCHEMAS = frozenset({"properties", "patternProperties", "$defs", "definitions",
                               "dependentSchemas"})


class PatternError(ValueError):
    """A pattern RE2 cannot compile."""


@lru_cache(maxsize=PATTERN_CACHE_SIZE)
def compiled(pattern: str) -> Any:
    options = re2.Options()
    options.log_errors = False
    options.max_mem = PATTERN_MAX_MEM
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise PatternError(f"{reason} (patterns run on RE2: no backreferences or "
                           "lookaround)") from exc


def _pattern(validator, pattern, instance, schema):
    if validator.is_type(instance, "string") and not compiled(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(validator, pattern_properties, instance, schema):
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in pattern_properties.items():
        for key, value in instance.items():
            if compiled(pattern).search(key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(validator, additional, instance, schema):
    if not validator.is_type(instance, "object"):
        return
    named, patterns = schema.get("properties", {}), schema.get("patternProperties", {})
    extras = sorted(key for key in instance if key not in named
                    and not any(compiled(p).search(key) for p in patterns))
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif additional is False and extras:
        yield ValidationError(f"additional properties are not allowed: "
                              f"{', '.join(repr(e) for e in extras)}")


Validator = validators.extend(Draft202012Validator, {
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
})


def schema_problems(schema: Any, path: str) -> list[tuple[str, str]]:
    """``(field, message)`` for what is wrong with a payload schema, ``path`` naming it."""
    try:
        Draft202012Validator.check_schema(schema)
    except RecursionError:
        return [(path, "the schema nests too deeply")]
    except SchemaError as exc:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in exc.absolute_path)
        return [(path + where, f"not a valid JSON Schema: {exc.message}")]
    problems, keywords = [], set()
    for field, pattern in _patterns(schema, path, keywords):
        try:
            compiled(pattern)
        except PatternError as exc:
            problems.append((field, f"pattern {pattern!r} does not compile: {exc}"))
    if {"unevaluatedProperties", "patternProperties"} <= keywords:
        problems.append((path, "unevaluatedProperties cannot be used with patternProperties"))
    return problems


def _patterns(schema: Any, path: str, keywords: set[str]) -> Iterator[tuple[str, str]]:
    if isinstance(schema, list):
        for i, item in enumerate(schema):
            yield from _patterns(item, f"{path}[{i}]", keywords)
        return
    if not isinstance(schema, dict):
        return
    for key, value in schema.items():
        keywords.add(key)
        here = f"{path}.{key}"
        if key == "pattern" and isinstance(value, str):
            yield here, value
        elif key in _NAMED_SUBSCHEMAS and isinstance(value, dict):
            for name, subschema in value.items():
                if key == "patternProperties":
                    yield here, name
                yield from _patterns(subschema, f"{here}.{name}", keywords)
        elif key not in _DATA_KEYWORDS:
            yield from _patterns(value, here, keywords)


def payload_problems(schema: dict[str, Any], payload: Any) -> list[dict[str, str]]:
    """Each way ``payload`` breaks ``schema``, naming its field (run in a worker)."""
    try:
        return [
            {"field": "payload" + "".join(
                f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path),
             "message": err.message}
            for err in Validator(schema).iter_errors(payload)
        ]
    except (PatternError, SchemaError, Unresolvable, RecursionError) as exc:
        message = "recurses without end" if isinstance(exc, RecursionError) else str(exc)
        return [{"field": "payload_schema", "message": f"the schema cannot be applied: "
                                                       f"{message}"}]
