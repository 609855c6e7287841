from __future__ import annotations

from typing import Annotated, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

T = TypeVar("T")


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_no_nul)]
Description = Annotated[str | None, Field(default=None, max_length=2000),
                        AfterValidator(lambda v: v if v is None else _no_nul(v))]
Reason = Annotated[str | None, Field(default=None, max_length=500),
                   AfterValidator(lambda v: v if v is None else _no_nul(v))]


class Strict(BaseModel):
    """A request body: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


class BlockRequest(Strict):
    reason: Reason = None
