"""Example.greet: a function built outside Stepline's repository, from the template in
``runtime/template/``. It greets the name in its payload. Rename it (the spec's name and
slug, ``func.yaml``'s name), replace the config model and ``run``, register it with
``POST /v1/functions`` (``python -m function.registration <endpoint>`` prints the body),
and steps of every workflow can use it. docs/writing-a-function.md walks the whole way."""

from __future__ import annotations

from typing import Any

from stepline.sdk import Context, Field, FunctionConfig, FunctionHost, FunctionSpec, PermanentError


class GreetConfig(FunctionConfig):
    greeting: str = Field(default="Hello", min_length=1, max_length=40,
                          description="the word before the name")


SPEC = FunctionSpec(
    "Example.greet",  # what a step's `function` names; also its queue in the cluster
    "example-greet",  # func.yaml's name: its Knative Service and RabbitmqSource
    "action",
    "public",
    "Greets the name in the payload.",
    GreetConfig,
)


class Greet:
    spec = SPEC

    async def run(self, ctx: Context[GreetConfig]) -> Any:
        name = ctx.payload.get("name") if isinstance(ctx.payload, dict) else None
        if not isinstance(name, str) or not name:
            raise PermanentError("the payload has no `name` to greet")
        ctx.log(f"greeting {name}")
        return {"message": f"{ctx.config.greeting}, {name}!"}


def new() -> FunctionHost:
    return FunctionHost(Greet())
