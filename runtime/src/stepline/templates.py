"""Config templates: ``{{ expression }}`` in any string of a step's config, rendered in
a sandboxed Jinja2 environment over the packet. A string that is one expression and
nothing else keeps the expression's type (``"{{ payload.id }}"`` gives an int); any
other string renders to a string.

Bounded, because a tenant writes them. Checking a template (when a workflow is stored)
parses and compiles it and never evaluates anything: the optimizer, which would fold
``{{ 9 ** 9 ** 9 }}`` at compile time, is off. Rendering takes one of two paths:

- in process, for a template that is *bounded by its shape*: no loop, macro or call, at
  most ``FAST_MAX_NODES`` nodes, only filters whose output is at most a constant factor
  of their input, and ``*``, ``**`` and ``%`` checked for the size of what they would
  build. Its work is linear in the packet; this is nearly every real template
  (``{{ payload.id }}``, ``Bearer {{ payload.token }}``), and costs ~10 µs.
- in a worker process (:mod:`stepline.bounded`) with a deadline and a memory cap, for
  everything else (``{% for %}``, ``range()``, ``map``...): ~150 µs more per step.

Either way a result larger than ``RESULT_MAX_BYTES`` fails the step permanently.

A field the catalog marks as never templated (``verbatim``: SQL text) is left as
written, and a template in it is refused."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, nodes
from jinja2.compiler import CodeGenerator
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from stepline import bounded
from stepline.errors import PermanentError

_WHOLE = re.compile(r"^\s*\{\{(.*)\}\}\s*$", re.DOTALL)
RESULT_MAX_BYTES = 1024 * 1024
INT_MAX_BITS = 16_384  # ~5,000 digits: past Python's own int-to-text limit anyway
FAST_MAX_CHARS = 1_000
FAST_MAX_NODES = 48
CACHE_SIZE = 1024
_PRINTF_WIDTH = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")

# the shapes a template may take to render in process; everything else goes to a worker
_FAST_NODES = (
    nodes.Template, nodes.Output, nodes.TemplateData, nodes.If, nodes.Const, nodes.Name,
    nodes.Getattr, nodes.Getitem, nodes.Slice, nodes.Concat, nodes.Compare, nodes.Operand,
    nodes.And, nodes.Or, nodes.Not, nodes.Neg, nodes.Pos, nodes.CondExpr, nodes.Add,
    nodes.Sub, nodes.Mul, nodes.Div, nodes.FloorDiv, nodes.Mod, nodes.Pow, nodes.List,
    nodes.Tuple, nodes.Dict, nodes.Pair, nodes.Keyword, nodes.Filter, nodes.Test,
)
# output no larger than the input (plus a constant)
_FAST_FILTERS = frozenset({
    "abs", "bool", "capitalize", "count", "d", "default", "dictsort", "first", "float",
    "int", "items", "last", "length", "lower", "max", "min", "reverse", "round", "sort",
    "title", "trim", "unique", "upper",
})
# output a constant factor (at most ~12) of the input: only on the packet's own values,
# so that no chain of them multiplies
_FAST_WIDENING_FILTERS = frozenset({"e", "escape", "join", "string", "tojson", "urlencode"})
_FAST_TESTS = frozenset({
    "boolean", "defined", "divisibleby", "eq", "equalto", "even", "false", "float", "ge",
    "gt", "in", "integer", "le", "lower", "lt", "mapping", "ne", "none", "number", "odd",
    "sequence", "string", "true", "undefined", "upper",
})


NOT_TEMPLATED = (
    "is never templated: values reach it only as :named parameters bound from the "
    "payload, not as {{ }} or {% %}"
)


class TemplateError(ValueError):
    """A template that does not parse; ``path`` names where it is in the config."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


class _NoFolding(CodeGenerator):
    """Jinja's compiler evaluates every constant child of an output (`x {{ 'x'|center(10**9)
    }}`) while compiling, whatever ``optimized`` says: that would run a tenant's expression
    unbounded inside the control plane's validation. Nothing is evaluated before a run."""

    def _output_child_to_const(self, node: Any, frame: Any, finalize: Any) -> str:
        raise nodes.Impossible()


class _Environment(ImmutableSandboxedEnvironment):
    """The sandbox, with the operators that can build huge values checked first."""

    code_generator_class = _NoFolding
    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            _check_repeat(left, right)
        elif operator == "**":
            _check_power(left, right)
        elif isinstance(left, str):
            _check_printf(left)
        return super().call_binop(context, operator, left, right)


def _check_repeat(left: Any, right: Any) -> None:
    for times, seq in ((left, right), (right, left)):
        if isinstance(times, int) and isinstance(seq, str | list | tuple):
            if times * len(seq) > RESULT_MAX_BYTES:
                raise SecurityError(f"`*` would build {times * len(seq)} items, "
                                    f"more than {RESULT_MAX_BYTES}")


def _check_power(base: Any, exponent: Any) -> None:
    if isinstance(base, int) and isinstance(exponent, int) and abs(base) > 1 and exponent > 0:
        if exponent * abs(base).bit_length() > INT_MAX_BITS:
            raise SecurityError(f"`**` would give a number of more than {INT_MAX_BITS} bits")


def _check_printf(text: str) -> None:
    for width, precision in _PRINTF_WIDTH.findall(text):
        for part in (width, precision):
            if part == "*" or (part and int(part) > RESULT_MAX_BYTES):
                raise SecurityError("`%` formatting with a width or precision over "
                                    f"{RESULT_MAX_BYTES} (or `*`) is refused")


@lru_cache(maxsize=1)
def _env() -> _Environment:
    return _Environment(undefined=StrictUndefined, autoescape=False, optimized=False)


def _is_template(value: str) -> bool:
    return "{{" in value or "{%" in value


@dataclass(frozen=True)
class Compiled:
    """A template ready to render: ``whole`` keeps the expression's type; ``fast`` says
    its shape bounds it, so it renders in process."""

    whole: bool
    fast: bool
    run: Any


def _whole_expression(text: str) -> str | None:
    whole = _WHOLE.match(text)
    return whole.group(1) if whole and "{{" not in whole.group(1) else None


@lru_cache(maxsize=CACHE_SIZE)
def compiled(text: str) -> Compiled:
    """Parse and compile (never evaluate) ``text``; :class:`TemplateSyntaxError` if it
    does not, ``RecursionError`` if it nests too deeply."""
    env, expression = _env(), _whole_expression(text)
    if expression is not None:
        parser = Parser(env, expression, state="variable")
        tree = parser.parse_expression()
        if not parser.stream.eos:
            raise TemplateSyntaxError("chunk after expression", parser.stream.current.lineno)
        run = env.compile_expression(expression, undefined_to_none=False)
    else:
        tree = env.parse(text)
        run = env.from_string(text)
    fast = len(text) <= FAST_MAX_CHARS and _bounded_shape(tree)
    return Compiled(whole=expression is not None, fast=fast, run=run)


def _bounded_shape(tree: nodes.Node) -> bool:
    found = list(tree.find_all(nodes.Node))
    return len(found) <= FAST_MAX_NODES and all(_fast_node(n) for n in [tree, *found])


def _fast_node(node: nodes.Node) -> bool:
    if type(node) not in _FAST_NODES:
        return False
    if isinstance(node, nodes.Test):
        return node.name in _FAST_TESTS
    if isinstance(node, nodes.Filter):
        if node.name in _FAST_FILTERS:
            return True
        return node.name in _FAST_WIDENING_FILTERS and _widening_ok(node)
    return not isinstance(node, nodes.Name) or node.ctx == "load"


def _widening_ok(node: nodes.Filter) -> bool:
    on_data = isinstance(node.node, nodes.Name | nodes.Getattr | nodes.Getitem | nodes.Const)
    if node.name == "join":
        short = all(isinstance(a, nodes.Const) and len(str(a.value)) <= 8 for a in node.args)
        return on_data and short and not node.kwargs and len(node.args) <= 1
    return on_data and not node.args and not node.kwargs


def _refuse_in_verbatim(config: Any, verbatim: frozenset[str], path: str) -> Any:
    """``config`` without its verbatim fields, once none of them holds a template."""
    if not verbatim or not isinstance(config, dict):
        return config
    for key in verbatim & config.keys():
        for where, text in _strings(config[key], f"{path}.{key}"):
            if _is_template(text):
                raise TemplateError(where, NOT_TEMPLATED)
    return {k: v for k, v in config.items() if k not in verbatim}


def check(config: Any, path: str = "config", *, verbatim: frozenset[str] = frozenset()) -> None:
    """Raise :class:`TemplateError` for the first template in ``config`` that does not
    parse, or that stands in a ``verbatim`` field."""
    config = _refuse_in_verbatim(config, verbatim, path)
    for where, text in _strings(config, path):
        if not _is_template(text):
            continue
        try:
            compiled(text)
        except TemplateSyntaxError as exc:
            raise TemplateError(where, f"template does not parse: {exc.message}") from exc
        except (RecursionError, MemoryError) as exc:
            raise TemplateError(where, "template nests too deeply") from exc


async def render(config: Any, context: dict[str, Any], path: str = "config", *,
                 verbatim: frozenset[str] = frozenset()) -> Any:
    """``config`` with every template rendered but in its ``verbatim`` fields, which stay
    as written; a failure is the step's permanent error. The templates that are not
    bounded by their shape go to a worker, together. A template in a verbatim field (a
    version stored before the control plane refused it) fails too: its text was written
    to be rendered, and run as written it would mean something else."""
    try:
        rendered = _refuse_in_verbatim(config, verbatim, path)
    except TemplateError as exc:
        raise PermanentError(str(exc)) from exc
    slow = [(where, text) for where, text in _strings(rendered, path)
            if _is_template(text) and not _fast(text)]
    done = {}
    if slow:
        done = await bounded.shared().run(render_templates, slow, context,
                                          what=f"the templates of {path}")
    rendered = _fill(rendered, context, path, done)
    if isinstance(config, dict) and verbatim:
        rendered |= {k: config[k] for k in verbatim & config.keys()}
    return rendered


def _fast(text: str) -> bool:
    try:
        return compiled(text).fast
    except (TemplateSyntaxError, RecursionError, MemoryError):
        return False  # a stored template that no longer parses fails in the worker


def _fill(config: Any, context: dict[str, Any], path: str, done: dict[str, Any]) -> Any:
    if isinstance(config, dict):
        return {k: _fill(v, context, f"{path}.{k}", done) for k, v in config.items()}
    if isinstance(config, list):
        return [_fill(v, context, f"{path}[{i}]", done) for i, v in enumerate(config)]
    if path in done:
        return done[path]
    if not isinstance(config, str) or not _is_template(config):
        return config
    return render_one(config, context, path)


def render_one(text: str, context: dict[str, Any], where: str) -> Any:
    """One template's value, in this process: no deadline here, see :func:`render`."""
    try:
        template = compiled(text)
        if template.whole:
            value = template.run(**context)
            if isinstance(value, Undefined):
                value._fail_with_undefined_error()
        else:
            value = template.run.render(**context)
    except MemoryError:
        raise  # a worker reports it as its memory limit
    except Exception as exc:  # whatever the expression did wrong is the step's failure
        raise PermanentError(f"{where}: template failed: {type(exc).__name__}: {exc}") from exc
    if isinstance(value, str) and len(value) * 4 > RESULT_MAX_BYTES:
        size_check(len(value.encode()), where)
    return value


def size_check(size: int, where: str) -> None:
    if size > RESULT_MAX_BYTES:
        raise PermanentError(f"{where}: template result larger than {RESULT_MAX_BYTES} bytes")


def render_templates(items: list[tuple[str, str]], context: dict[str, Any]) -> dict[str, Any]:
    """In a worker: each ``(where, template)``'s value, checked to be JSON no larger
    than the limit (what leaves the worker is what the step may use)."""
    done = {}
    for where, text in items:
        value = render_one(text, context, where)
        try:
            encoded = json.dumps(value, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise PermanentError(f"{where}: template gave {type(value).__name__}, "
                                 "which is not JSON") from exc
        size_check(len(encoded.encode()), where)
        done[where] = json.loads(encoded)
    return done


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{path}[{i}]")
    elif isinstance(value, str):
        yield path, value
