"""A workflow definition validated as a whole before anything is stored: every problem
of the document is reported at once, each naming the step and the field.

Checked: each step's shape and nesting depth; its function exists and is visible to the
account; its config against the function's JSON Schema; templates parse, and none stands
in a field the catalog marks as never templated (SQL); JMESPath, CEL and cron
expressions compile; a Webhook's payload schema is valid and its patterns
compile on RE2; time zones exist; ``next`` and branch targets exist; exactly one entry;
triggers only at the entry; no step unreachable; no cycle.

Nothing here evaluates what the tenant wrote, and the control plane runs all of it in a
worker of :mod:`stepline.bounded` (:func:`validate_bounded`), so that a document built
to be slow to check costs that worker its deadline, never the API's event loop."""

from __future__ import annotations

import json
import math
import re
import zoneinfo
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import cel
import jmespath
from croniter import croniter
from jmespath.exceptions import JMESPathError
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from stepline import bounded, payload_schema, templates
from stepline.catalog import CATALOG, verbatim_fields
from stepline.definition import StepDefinition
from stepline.packet import deeper_than

MAX_STEPS = 500
MAX_DEPTH = 64  # levels of arrays and objects in one step; deeper is refused, not parsed
VALIDATION_TIMEOUT_S = 10.0
CRON_DESCRIPTORS = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily",
                              "@midnight", "@hourly"})
# what PingSource and Kubernetes CronJob accept in a field; croniter's own extensions
# (H, L, W, #, a sixth field) would be refused by the cluster later
_CRON_FIELD = re.compile(r"^(\*|\?|[0-9]+|[A-Za-z]{3})([-/,](\*|[0-9]+|[A-Za-z]{3}))*$")
_CRON_NAMES = frozenset("jan feb mar apr may jun jul aug sep oct nov dec "
                        "sun mon tue wed thu fri sat".split())


@dataclass(frozen=True)
class Problem:
    step: str | None
    field: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FunctionInfo:
    """What validation needs of a function the account may use."""

    name: str
    kind: str
    config_schema: dict[str, Any]


def catalog_functions(*, is_operator: bool = False) -> dict[str, FunctionInfo]:
    """The built-in catalog as an account sees it: public functions, and private ones
    for operators."""
    return {
        spec.name: FunctionInfo(spec.name, spec.kind, spec.config_schema)
        for spec in CATALOG.values()
        if spec.visibility == "public" or is_operator
    }


@lru_cache(maxsize=256)
def _validator(schema_json: str) -> Draft202012Validator:
    """Config schemas are ours, an operator's (a registered function) or a publisher's (a
    service's input): their patterns run on RE2, as a Webhook's payload schema does."""
    return payload_schema.Validator(json.loads(schema_json))


async def validate_bounded(
    raw_steps: Any, *, functions: Mapping[str, FunctionInfo], is_operator: bool
) -> tuple[list[StepDefinition], str | None, list[Problem]]:
    """:func:`validate_definition` in a worker: a document too slow to check is one
    problem, and the event loop never runs the check."""
    try:
        return await bounded.shared().run(
            validate_definition, raw_steps, functions=dict(functions), is_operator=is_operator,
            what="checking the definition", timeout_s=VALIDATION_TIMEOUT_S)
    except bounded.Overrun as exc:
        return [], None, [Problem(None, "steps", str(exc))]


def targets(step: StepDefinition) -> list[tuple[str, str]]:
    """The (field, key) pairs of the steps this step may send to."""
    found = [("next", step.next)] if step.next else []
    if step.function == "Condition":
        branches = step.config.get("branches")
        for i, branch in enumerate(branches if isinstance(branches, list) else []):
            if isinstance(branch, dict) and isinstance(branch.get("next"), str):
                found.append((f"config.branches[{i}].next", branch["next"]))
        if isinstance(step.config.get("default"), str):
            found.append(("config.default", step.config["default"]))
    return found


def validate_definition(
    raw_steps: Any,
    *,
    functions: Mapping[str, FunctionInfo] | None = None,
    is_operator: bool = False,
) -> tuple[list[StepDefinition], str | None, list[Problem]]:
    """The parsed steps, the entry step's key, and every problem found."""
    if functions is None:
        functions = catalog_functions(is_operator=is_operator)
    if not isinstance(raw_steps, list) or not raw_steps:
        return [], None, [Problem(None, "steps", "a workflow needs a non-empty array of steps")]
    if len(raw_steps) > MAX_STEPS:
        return [], None, [Problem(None, "steps", f"a workflow has at most {MAX_STEPS} steps")]
    steps, problems = _parse_steps(raw_steps)
    keys = [s.key for s in steps]
    for key in sorted({k for k in keys if keys.count(k) > 1}):
        problems.append(Problem(key, "key", "two steps have this key"))
    by_key = {s.key: s for s in steps}
    for step in steps:
        problems += _check_step(step, by_key, functions, is_operator)
    entry, graph_problems = _check_graph(steps, by_key, functions)
    problems += graph_problems
    return steps, entry, problems


def _parse_steps(raw_steps: list[Any]) -> tuple[list[StepDefinition], list[Problem]]:
    steps, problems = [], []
    for i, raw in enumerate(raw_steps):
        key = raw.get("key") if isinstance(raw, dict) else None
        name = key if isinstance(key, str) and key else f"steps[{i}]"
        if deeper_than(raw, MAX_DEPTH):
            problems.append(Problem(name, "(step)", f"nested deeper than {MAX_DEPTH} levels"))
            continue
        unstorable = list(_unstorable(raw, ""))
        for where, message in unstorable:
            problems.append(Problem(name, where.lstrip(".") or "(step)", message))
        try:
            step = StepDefinition.model_validate(raw)
        except ValidationError as exc:
            for err in exc.errors():
                where = ".".join(str(p) for p in err["loc"]) or "(step)"
                problems.append(Problem(name, where, err["msg"]))
            continue
        steps.append(step)
    return steps, problems


def _unstorable(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Values PostgreSQL's jsonb cannot hold: NUL characters and non-finite numbers."""
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(k, str) and "\x00" in k:
                yield f"{path}.{k!r}", "a key must not contain a NUL character"
            yield from _unstorable(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _unstorable(v, f"{path}[{i}]")
    elif isinstance(value, str) and "\x00" in value:
        yield path, "a text must not contain a NUL character"
    elif isinstance(value, float) and not math.isfinite(value):
        yield path, "a number must be finite"


def _check_step(step: StepDefinition, by_key: dict[str, StepDefinition],
                functions: Mapping[str, FunctionInfo], is_operator: bool) -> Iterator[Problem]:
    function = functions.get(step.function)
    verbatim = verbatim_fields(function.config_schema) if function else frozenset()
    if function is None:
        yield Problem(step.key, "function", f"unknown function {step.function!r}")
    else:
        schema = _validator(json.dumps(function.config_schema, sort_keys=True))
        for err in sorted(schema.iter_errors(step.config), key=str):
            if function.kind == "service" and _templated(err.instance):
                continue  # a service's input is checked once the call has rendered it
            path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path)
            yield Problem(step.key, f"config{path}", err.message)
    try:
        templates.check(step.config, verbatim=verbatim)
    except templates.TemplateError as exc:
        yield Problem(step.key, exc.path, str(exc).split(": ", 1)[1])
    for field, key in targets(step):
        if key not in by_key:
            yield Problem(step.key, field, f"no step has the key {key!r}")
        elif key == step.key:
            yield Problem(step.key, field, "a step cannot send to itself")
    if step.next and step.output is None:
        yield Problem(step.key, "output", "output is null, so `next` would never run")
    if step.function == "Condition" and step.output is None:
        yield Problem(step.key, "output", "output is null, so no branch would ever run")
    yield from _check_config(step, is_operator)


def _templated(value: Any) -> bool:
    return isinstance(value, str) and templates._is_template(value)


def _check_config(step: StepDefinition, is_operator: bool) -> Iterator[Problem]:
    config = step.config
    if step.function == "Transform" and isinstance(config.get("expression"), str):
        yield from _jmespath(step.key, "config.expression", config["expression"])
    if step.function == "Http.request" and isinstance(config.get("items_path"), str):
        yield from _jmespath(step.key, "config.items_path", config["items_path"])
    if step.function == "CronJob":
        if isinstance(config.get("schedule"), str):
            yield from _cron(step.key, config["schedule"])
        if isinstance(config.get("timezone"), str):
            yield from _timezone(step.key, config["timezone"])
    if step.function == "Manual" and config.get("form") is not None:
        yield from _schema(step.key, "config.form", config["form"])
    if step.function == "Condition" and isinstance(config.get("branches"), list):
        for i, branch in enumerate(config["branches"]):
            if isinstance(branch, dict) and isinstance(branch.get("when"), str):
                yield from _cel(step.key, f"config.branches[{i}].when", branch["when"])
    if step.function == "Webhook" and isinstance(config.get("payload_schema"), dict):
        yield from _schema(step.key, "config.payload_schema", config["payload_schema"])
    if step.function == "Database.query" and not config.get("connection") and not is_operator:
        yield Problem(step.key, "config.connection",
                      "a connection is required: the platform database is for operators only")


def _schema(key: str, field: str, schema: Any) -> Iterator[Problem]:
    """A tenant's JSON Schema (a Webhook's payload schema, a Manual form): valid, its
    patterns compiling on RE2."""
    if not isinstance(schema, dict):
        yield Problem(key, field, "a JSON Schema object is needed")
        return
    for where, message in payload_schema.schema_problems(schema, field):
        yield Problem(key, where, message)


def _jmespath(key: str, field: str, expression: str) -> Iterator[Problem]:
    if templates._is_template(expression):
        return
    try:
        jmespath.compile(expression)
    except JMESPathError as exc:
        yield Problem(key, field, f"JMESPath does not compile: {exc}")


def _cel(key: str, field: str, expression: str) -> Iterator[Problem]:
    try:
        cel.compile(expression)
    except (ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "syntax error"
        yield Problem(key, field, f"CEL does not compile: {first}")


def cron_problem(schedule: str) -> str | None:
    """Why ``schedule`` is not a 5-field cron expression the cluster accepts, or None."""
    text = schedule.strip()
    if text.lower() in CRON_DESCRIPTORS:
        return None
    fields = text.split()
    if len(fields) != 5:
        return f"a cron expression has 5 fields (minute hour day month weekday), not {len(fields)}"
    for field in fields:
        if not _CRON_FIELD.match(field) or any(
                word.lower() not in _CRON_NAMES for word in re.findall(r"[A-Za-z]+", field)):
            return f"{field!r} is not a cron field"
    try:
        valid = croniter.is_valid(text, strict=True)
    except Exception:  # croniter raises more than its documented errors on odd input
        valid = False
    return None if valid else "not a valid cron expression"


def _cron(key: str, schedule: str) -> Iterator[Problem]:
    if (message := cron_problem(schedule)) is not None:
        yield Problem(key, "config.schedule", message)


def _timezone(key: str, name: str) -> Iterator[Problem]:
    try:
        if not name or name != name.strip():
            raise ValueError(name)
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        yield Problem(key, "config.timezone", f"unknown IANA time zone {name!r}")


def _check_graph(steps: list[StepDefinition], by_key: dict[str, StepDefinition],
                 functions: Mapping[str, FunctionInfo]) -> tuple[str | None, list[Problem]]:
    if not steps:
        return None, []
    problems: list[Problem] = []
    edges = {key: [(f, k) for f, k in targets(s) if k in by_key and k != key]
             for key, s in by_key.items()}
    referenced = {k for pairs in edges.values() for _, k in pairs}
    entries = [s for s in by_key.values() if s.key not in referenced]
    problems += _cycles(edges)
    if len(entries) != 1:
        names = ", ".join(s.key for s in entries) or "none (every step is some step's next)"
        problems.append(Problem(None, "steps", f"exactly one entry step is needed, found: {names}"))
        return None, problems
    entry = entries[0]
    for step in by_key.values():
        function = functions.get(step.function)
        if step is not entry and function is not None and function.kind == "trigger":
            message = f"{step.function} is a trigger: only the entry step may be one"
            problems.append(Problem(step.key, "function", message))
    seen, todo = {entry.key}, [entry.key]
    while todo:
        for _, key in edges[todo.pop()]:
            if key not in seen:
                seen.add(key)
                todo.append(key)
    for key in by_key:
        if key not in seen:
            problems.append(Problem(key, "key", "no path from the entry step reaches this step"))
    return entry.key, problems


def _cycles(edges: dict[str, list[tuple[str, str]]]) -> list[Problem]:
    """One problem per edge that closes a cycle, found by a depth-first walk."""
    problems, state = [], dict.fromkeys(edges, 0)  # 0 new, 1 on the path, 2 done
    for start in edges:
        if state[start]:
            continue
        path, stack = [start], [iter(edges[start])]
        state[start] = 1
        while stack:
            field, key = next(stack[-1], (None, None))
            if key is None:
                state[path.pop()] = 2
                stack.pop()
            elif state[key] == 1:
                loop = path[path.index(key):] + [key]
                problems.append(Problem(path[-1], field,
                                        "this step closes a cycle: " + " -> ".join(loop)))
            elif state[key] == 0:
                state[key] = 1
                path.append(key)
                stack.append(iter(edges[key]))
    return problems
