"""Config templates: ``{{ expression }}`` in any string of a step's config, rendered in
a sandboxed Jinja2 environment over the packet. A string that is one expression and
nothing else keeps the expression's type (``"{{ payload.id }}"`` gives an int); any
other string renders to a string. A field the catalog marks as never templated
(``verbatim``: SQL text) is left as written, and a template in it is refused."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, UndefinedError
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from stepline.errors import PermanentError

_WHOLE = re.compile(r"^\s*\{\{(.*)\}\}\s*$", re.DOTALL)
NOT_TEMPLATED = (
    "is never templated: values reach it only as :named parameters bound from the "
    "payload, not as {{ }} or {% %}"
)


class TemplateError(ValueError):
    """A template that does not parse; ``path`` names where it is in the config."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


@cache
def _env() -> SandboxedEnvironment:
    return SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


def _is_template(value: str) -> bool:
    return "{{" in value or "{%" in value


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
            whole = _WHOLE.match(text)
            if whole and "{{" not in whole.group(1):
                _env().compile_expression(whole.group(1))
            else:
                _env().parse(text)
        except TemplateSyntaxError as exc:
            raise TemplateError(where, f"template does not parse: {exc.message}") from exc


def render(
    config: Any, context: dict[str, Any], *, verbatim: frozenset[str] = frozenset()
) -> Any:
    """``config`` with every template rendered but in its ``verbatim`` fields, which
    stay as written; a failure is the step's permanent error. A template in a verbatim
    field (a version stored before the control plane refused it) fails too: its text
    was written to be rendered, and run as written it would mean something else."""
    try:
        _refuse_in_verbatim(config, verbatim, "config")
    except TemplateError as exc:
        raise PermanentError(str(exc)) from exc
    if not isinstance(config, dict):
        return _render(config, context, "config")
    return {
        k: v if k in verbatim else _render(v, context, f"config.{k}") for k, v in config.items()
    }


def _render(config: Any, context: dict[str, Any], path: str) -> Any:
    if isinstance(config, dict):
        return {k: _render(v, context, f"{path}.{k}") for k, v in config.items()}
    if isinstance(config, list):
        return [_render(v, context, f"{path}[{i}]") for i, v in enumerate(config)]
    if not isinstance(config, str) or not _is_template(config):
        return config
    try:
        whole = _WHOLE.match(config)
        if whole and "{{" not in whole.group(1):
            value = _env().compile_expression(whole.group(1), undefined_to_none=False)(**context)
            if isinstance(value, Undefined):
                value._fail_with_undefined_error()
            return value
        return _env().from_string(config).render(**context)
    except (UndefinedError, SecurityError, TemplateSyntaxError, TypeError) as exc:
        raise PermanentError(f"{path}: template failed: {exc}") from exc


def _strings(value: Any, path: str):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{path}[{i}]")
    elif isinstance(value, str):
        yield path, value
