"""GET /v1/me: who the bearer token is — its account, its role, whether the account is an
operator, and the token itself — read by any role, the token never guessed from its
prefix."""

from __future__ import annotations

from cp_support import api


async def test_each_token_reads_itself(database_url: str) -> None:
    async with api(database_url) as a:
        account, admin = await a.account("acme")
        created = await admin.post("/v1/tokens", json={"name": "dashboards", "role": "viewer"})
        viewer = a.client(created.json()["token"])

        me = await viewer.get("/v1/me")
        assert me.status_code == 200, me.text
        assert me.json() == {
            "account_id": account["id"], "account_name": "acme", "role": "viewer",
            "is_operator": False, "token_id": created.json()["id"],
            "token_name": "dashboards"}
        mine = (await admin.get("/v1/me")).json()
        assert (mine["role"], mine["token_id"]) == ("admin", account["admin_token"]["id"])

        operator = (await a.operator.get("/v1/me")).json()
        assert (operator["account_name"], operator["is_operator"]) == ("operator", True)
        assert (operator["role"], operator["token_name"]) == ("admin", "bootstrap")


async def test_a_revoked_or_missing_token_is_401(database_url: str) -> None:
    async with api(database_url) as a:
        _, admin = await a.account("acme")
        created = (await admin.post("/v1/tokens", json={"name": "old", "role": "editor"})).json()
        assert (await admin.delete(f"/v1/tokens/{created['id']}")).status_code == 204
        assert (await a.client(created["token"]).get("/v1/me")).status_code == 401
        assert (await a.anonymous.get("/v1/me")).status_code == 401
