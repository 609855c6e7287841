from __future__ import annotations

from fastapi import APIRouter, Path

from stepline_control.deps import OperatorWriterDep, PrincipalDep, SessionDep
from stepline_control.schemas.common import Page
from stepline_control.schemas.functions import FunctionPublic, FunctionRegister, FunctionUpdate
from stepline_control.services import functions

router = APIRouter(prefix="/v1/functions", tags=["functions"])


@router.get("")
async def list_functions(session: SessionDep, principal: PrincipalDep) -> Page[FunctionPublic]:
    """The catalog with each function's config JSON Schema and price, and the services
    the account may call (kind `service`): one page, it is small."""
    return Page[FunctionPublic](items=await functions.list_functions(session, principal=principal))


@router.post("", status_code=201)
async def register_function(body: FunctionRegister, session: SessionDep,
                            _: OperatorWriterDep) -> FunctionPublic:
    """Operators: a function built outside this repository joins the catalog (409 when
    the name is taken)."""
    return await functions.register(session, body=body)


@router.patch("/{name}")
async def update_function(body: FunctionUpdate, session: SessionDep, _: OperatorWriterDep,
                          name: str = Path(max_length=100)) -> FunctionPublic:
    """Operators: a function's price per process and visibility."""
    return await functions.update(session, name=name, body=body)
