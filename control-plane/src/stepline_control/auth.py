"""Bearer API tokens: shown once, stored as sha256, resolved to a principal (the
account and role). The seam for OIDC is :func:`resolve`: another scheme would resolve a
bearer token to the same :class:`Principal`."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from stepline.models import Account, ApiToken

TOKEN_PREFIX = "stl_"
WRITE_ROLES = frozenset({"admin", "editor"})
TOUCH_INTERVAL = timedelta(seconds=60)


@dataclass(frozen=True)
class Principal:
    account_id: uuid.UUID
    account_name: str
    token_id: uuid.UUID
    token_name: str
    role: str
    is_operator: bool
    blocked: bool
    last_used_at: datetime | None = None

    @property
    def can_write(self) -> bool:
        return self.role in WRITE_ROLES


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def resolve(session: AsyncSession, token: str) -> Principal | None:
    row = (
        await session.execute(
            select(ApiToken, Account)
            .join(Account, Account.id == ApiToken.account_id)
            .where(ApiToken.token_hash == token_hash(token), ApiToken.revoked_at.is_(None))
        )
    ).first()
    if row is None:
        return None
    tok, account = row
    return Principal(
        account_id=account.id, account_name=account.name, token_id=tok.id,
        token_name=tok.name, role=tok.role,
        is_operator=account.is_operator, blocked=account.blocked_at is not None,
        last_used_at=tok.last_used_at,
    )


async def touch(session: AsyncSession, principal: Principal) -> None:
    """Record that the token was used, at most once a minute (a write per request would
    cost more than the information is worth), in its own short transaction."""
    last = principal.last_used_at
    if last is not None and datetime.now(UTC) - last < TOUCH_INTERVAL:
        return
    await session.execute(update(ApiToken).where(ApiToken.id == principal.token_id)
                          .values(last_used_at=func.now()))
    await session.commit()


def issue_token(account_id: uuid.UUID, *, name: str, role: str) -> tuple[ApiToken, str]:
    """A new token row (to add to the session) and the token itself, shown once."""
    token = new_token()
    row = ApiToken(account_id=account_id, name=name, role=role, token_hash=token_hash(token),
                   prefix=token[: len(TOKEN_PREFIX) + 4])
    return row, token


async def ensure_bootstrap_token(session: AsyncSession, token: str) -> uuid.UUID:
    """The operator account and admin token of ``STEPLINE_BOOTSTRAP_TOKEN``, created if
    absent. Returns the account's id."""
    digest = token_hash(token)
    existing = await session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
    if existing is not None:
        await session.execute(
            update(ApiToken).where(ApiToken.id == existing.id).values(revoked_at=None)
        )
        return existing.account_id
    account = Account(name="operator", is_operator=True)
    session.add(account)
    await session.flush()
    session.add(ApiToken(account_id=account.id, name="bootstrap", role="admin",
                         token_hash=digest, prefix=token[:8]))
    await session.flush()
    return account.id
