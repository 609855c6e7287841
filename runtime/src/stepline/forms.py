"""A Manual step's form: ``config.form`` is a JSON Schema of the payload a person starts
the job with. The UI renders it as a form; a start through the API whose payload fails
it is refused, naming each field (:func:`check`, the lifecycle start's ``check``)."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError

from stepline.errors import Rejected


def field_of(path: Any) -> str:
    return "payload" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def schema_problem(form: Any) -> str | None:
    """Why ``form`` is not a JSON Schema, or None."""
    if not isinstance(form, dict):
        return "a form is a JSON Schema object"
    try:
        Draft202012Validator.check_schema(form)
    except SchemaError as exc:
        return f"not a JSON Schema: {exc.message}"
    return None


def problems_of(err: ValidationError) -> list[dict[str, str]]:
    """One error as problems naming fields: a missing required field is named itself,
    not its parent."""
    path = list(err.absolute_path)
    if err.validator == "required" and isinstance(err.instance, dict):
        return [{"field": field_of([*path, name]), "message": "is required"}
                for name in err.validator_value if name not in err.instance]
    return [{"field": field_of(path), "message": err.message}]


def check(config: dict[str, Any], payload: Any) -> None:
    """Refuse a payload that fails the step's form, every field that is wrong named."""
    form = config.get("form")
    if not form:
        return
    found = [p for err in Draft202012Validator(form).iter_errors(payload)
             for p in problems_of(err)]
    problems = sorted({p["field"]: p for p in found}.values(), key=lambda p: p["field"])
    if problems:
        raise Rejected("the payload does not fill the step's form", problems)
