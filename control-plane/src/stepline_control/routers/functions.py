from __future__ import annotations

from fastapi import APIRouter

from stepline_control.deps import PrincipalDep, SessionDep
from stepline_control.schemas.common import Page
from stepline_control.schemas.functions import FunctionPublic
from stepline_control.services import functions

router = APIRouter(prefix="/v1/functions", tags=["functions"])


@router.get("")
async def list_functions(session: SessionDep, principal: PrincipalDep) -> Page[FunctionPublic]:
    """The catalog with each function's config JSON Schema: one page, it is small."""
    return Page[FunctionPublic](items=await functions.list_functions(session, principal=principal))
