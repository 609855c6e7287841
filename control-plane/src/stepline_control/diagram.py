"""A workflow version drawn as a Mermaid flowchart: pure, from its steps.

Triggers are stadiums, Conditions rhombi, other steps boxes; a ``multiple`` output is a
thick arrow (one message per item), branches carry their CEL condition. Node ids are
generated (``s0``, ``s1``...) so any step key is safe; labels are escaped with Mermaid's
entity codes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

TRIGGERS = frozenset({"Manual", "CronJob", "Webhook"})
_ENTITIES = {'"': "#quot;", "<": "#lt;", ">": "#gt;", "&": "#amp;", "#": "#35;",
             "|": "#124;", "\n": " ", "\r": " ", "`": "#96;"}
MAX_LABEL = 80


class StepLike(Protocol):
    key: str
    name: str | None
    function: str
    config: dict[str, Any]
    output: str | None


def escape(text: str) -> str:
    if len(text) > MAX_LABEL:
        text = text[: MAX_LABEL - 1] + "…"
    return "".join(_ENTITIES.get(ch, ch) for ch in text)


def _node(node_id: str, step: StepLike) -> str:
    label = f"{escape(step.name or step.key)}<br/><small>{escape(step.function)}</small>"
    if step.function in TRIGGERS:
        return f'    {node_id}(["{label}"])'
    if step.function == "Condition":
        return f'    {node_id}{{"{label}"}}'
    return f'    {node_id}["{label}"]'


def _edges(step: StepLike, next_key: str | None, ids: dict[str, str]) -> Iterable[str]:
    source = ids[step.key]
    arrow = "==>" if step.output == "multiple" else "-->"
    if step.function == "Condition":
        branches = step.config.get("branches") or []
        for branch in branches if isinstance(branches, list) else []:
            if isinstance(branch, dict) and branch.get("next") in ids:
                when = escape(str(branch.get("when", "")))
                yield f'    {source} {arrow}|"{when}"| {ids[branch["next"]]}'
        if step.config.get("default") in ids:
            yield f'    {source} {arrow}|"default"| {ids[step.config["default"]]}'
    if next_key in ids and step.output is not None:
        label = '|"each item"|' if step.output == "multiple" else ""
        yield f"    {source} {arrow}{label} {ids[next_key]}"


def flowchart(steps: list[tuple[StepLike, str | None]]) -> str:
    """``steps``: each step with the key of its ``next``, in definition order."""
    ids = {step.key: f"s{i}" for i, (step, _) in enumerate(steps)}
    lines = ["flowchart TD"]
    lines += [_node(ids[step.key], step) for step, _ in steps]
    for step, next_key in steps:
        lines += list(_edges(step, next_key, ids))
    return "\n".join(lines) + "\n"
