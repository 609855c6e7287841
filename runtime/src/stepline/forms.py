"""A Manual step's form: ``config.form`` is a JSON Schema of the payload a person starts
the job with. The UI renders it as a form; a start through the API whose payload fails
it is refused, naming each field (:func:`check`, the lifecycle start's ``check``).

A form is a tenant's JSON Schema like a Webhook's ``payload_schema``: its patterns run
on RE2 and the check runs in a bounded worker (:mod:`stepline.payload_schema`,
:mod:`stepline.bounded`), so no form can stall the API."""

from __future__ import annotations

from typing import Any

from jsonschema.exceptions import SchemaError, ValidationError
from referencing.exceptions import Unresolvable

from stepline import bounded
from stepline.errors import Rejected
from stepline.payload_schema import PatternError, Validator


def field_of(path: Any) -> str:
    return "payload" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def problems_of(err: ValidationError) -> list[dict[str, str]]:
    """One error as problems naming fields: a missing required field is named itself,
    not its parent (a form shows the message under that field)."""
    path = list(err.absolute_path)
    if err.validator == "required" and isinstance(err.instance, dict):
        return [{"field": field_of([*path, name]), "message": "is required"}
                for name in err.validator_value if name not in err.instance]
    return [{"field": field_of(path), "message": err.message}]


def form_problems(form: dict[str, Any], payload: Any) -> list[dict[str, str]]:
    """Each field of ``payload`` that fails ``form``, once, in order (run in a worker)."""
    try:
        found = [p for err in Validator(form).iter_errors(payload) for p in problems_of(err)]
    except (PatternError, SchemaError, Unresolvable, RecursionError) as exc:
        return [{"field": "form", "message": f"the form cannot be applied: {exc}"}]
    return sorted({p["field"]: p for p in found}.values(), key=lambda p: p["field"])


async def check(config: dict[str, Any], payload: Any) -> None:
    """Refuse a payload that fails the step's form, every field that is wrong named."""
    form = config.get("form")
    if not form:
        return
    try:
        problems = await bounded.shared().run(form_problems, form, payload,
                                              what="checking the form")
    except bounded.Overrun as exc:
        problems = [{"field": "form", "message": str(exc)}]
    if problems:
        raise Rejected("the payload does not fill the step's form", problems)
