"""Two accounts of one platform, the shape every services test starts from: a publisher
("Acme") with one public service, ``Acme.enrichLead`` (a Manual entry and a Transform,
0.25 a call), and a caller ("Buyer") whose workflow calls it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from control_plane.cp_support import Api, manual_then, project, workflow

SERVICE = "Acme.enrichLead"
ENRICH_SCHEMA = {"type": "object", "required": ["email"],
                 "properties": {"email": {"type": "string"}}}
# what the service's workflow does with the input
ENRICH = "{lead: email, score: length(email)}"


@dataclass
class Market:
    acme: dict[str, Any]
    publisher: httpx.AsyncClient
    buyer: dict[str, Any]
    caller: httpx.AsyncClient
    service: dict[str, Any]
    calling: dict[str, Any]  # the caller's workflow: Manual -> the service -> Transform


def calling_steps() -> list[dict[str, Any]]:
    return [{"key": "start", "function": "Manual", "next": "enrich"},
            {"key": "enrich", "function": SERVICE, "next": "after"},
            {"key": "after", "function": "Transform",
             "config": {"expression": "{enriched: @}"}, "output": None}]


async def market(platform: Api, *, price: str = "0.25") -> Market:
    acme, publisher = await platform.account("Acme")
    buyer, caller = await platform.account("Buyer")
    flow = await workflow(publisher, manual_then("Transform", {"expression": ENRICH}),
                          project_id=await project(publisher, "services"), name="enrich")
    response = await publisher.post("/v1/services", json={
        "workflow_id": flow["id"], "name": SERVICE, "visibility": "public",
        "description": "scores a lead", "input_schema": ENRICH_SCHEMA, "price_per_call": price})
    assert response.status_code == 201, response.text
    calling = await workflow(caller, calling_steps(), name="uses the service")
    return Market(acme, publisher, buyer, caller, response.json(), calling)
