"""Who may make an operator: only an admin token of an operator account creates an
operator account; an operator's editor creates tenants only, its viewer nothing; no
token of a tenant creates anything; and no account becomes an operator after its
creation (there is no promotion through the API)."""

from __future__ import annotations

import httpx
from cp_support import api


async def account_names(operator: httpx.AsyncClient) -> list[str]:
    return sorted(a["name"] for a in (await operator.get("/v1/accounts")).json()["items"])


async def test_only_an_operator_admin_creates_an_operator_account(database_url: str) -> None:
    async with api(database_url) as a:
        editor, viewer = await a.token(a.operator, "editor"), await a.token(a.operator, "viewer")
        _, tenant_admin = await a.account("tenant")
        before = await account_names(a.operator)

        for who in (editor, viewer, tenant_admin):
            refused = await who.post("/v1/accounts", json={"name": "root2", "is_operator": True})
            assert refused.status_code == 403, refused.text
        assert "admin" in (await editor.post("/v1/accounts", json={
            "name": "root2", "is_operator": True})).json()["error"]["message"]
        assert await account_names(a.operator) == before

        made = await a.operator.post("/v1/accounts", json={"name": "root2", "is_operator": True})
        assert made.status_code == 201, made.text
        assert made.json()["is_operator"] is True
        me = (await a.client(made.json()["admin_token"]["token"]).get("/v1/me")).json()
        assert me["is_operator"] is True


async def test_an_operator_editor_creates_tenants_only(database_url: str) -> None:
    async with api(database_url) as a:
        editor, viewer = await a.token(a.operator, "editor"), await a.token(a.operator, "viewer")
        made = await editor.post("/v1/accounts", json={"name": "shop"})
        assert made.status_code == 201, made.text
        assert made.json()["is_operator"] is False
        refused = await viewer.post("/v1/accounts", json={"name": "other shop"})
        assert refused.status_code == 403


async def test_no_account_is_promoted_after_its_creation(database_url: str) -> None:
    async with api(database_url) as a:
        account, _ = await a.account("shop")
        promoted = await a.operator.patch(f"/v1/accounts/{account['id']}",
                                          json={"is_operator": True})
        assert promoted.status_code == 422
        assert promoted.json()["error"]["details"][0]["field"] == "body.is_operator"
        assert (await a.operator.get(f"/v1/accounts/{account['id']}")).json()["is_operator"] \
            is False
