from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)

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


PRICE_PLACES = 6
_PRICE = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,6})?$")


def _price(value: Any) -> Decimal:
    """A price as money is written: a decimal string, never a float (0.1 + 0.2 is not
    0.3 in binary)."""
    if not isinstance(value, str) or not _PRICE.match(value):
        raise ValueError('a price is a decimal string with at most 6 decimal places, '
                         'such as "0.25", not a number')
    return Decimal(value)


def _money_text(value: Decimal) -> str:
    return f"{value:.{PRICE_PLACES}f}"


# a price in a request: "0.25"; in an answer every amount is a decimal string of 6 places
Price = Annotated[Decimal, BeforeValidator(_price),
                  WithJsonSchema({"type": "string", "pattern": _PRICE.pattern,
                                  "examples": ["0.25"]})]
Money = Annotated[Decimal, PlainSerializer(_money_text, return_type=str)]
# dotted like a function: Acme.enrichLead, GoogleAnalytics.getPages
FUNCTION_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+$"
FunctionName = Annotated[str, Field(min_length=3, max_length=100,
                                    pattern=FUNCTION_NAME_PATTERN,
                                    examples=["Acme.enrichLead"])]


class Strict(BaseModel):
    """A request body: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


class BlockRequest(Strict):
    reason: Reason = None
