"""Small shared types of the domain core.

`NewType` ids keep a school id from being passed where a student key is expected; they cost
nothing at run time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any, Literal, NewType, TypeVar

T = TypeVar("T")

Sex = Literal["male", "female"]
"""Sex as recorded at screening; the growth references are sex-specific."""

SEXES: tuple[Sex, ...] = ("male", "female")

SchoolId = NewType("SchoolId", str)
"""The education bureau's school code."""

StudentKey = NewType("StudentKey", str)
"""HMAC-SHA256 hex of the national student number; never the number itself."""


def positional_builder(cls: type[T]) -> Callable[..., T]:
    """A constructor taking a frozen, slotted dataclass's fields positionally, in declaration order.

    A frozen dataclass's generated ``__init__`` sets each field through ``object.__setattr__``
    and takes its arguments by keyword; setting the slots directly builds a 15-field growth result
    in about two thirds of the time (2.0 against 2.9 µs here). Only for results built once per
    event or alert on the worker's hot path; everywhere else the keyword constructor reads better.
    There is no ``__post_init__`` to skip: the helper refuses classes that have one.
    """
    if getattr(cls, "__post_init__", None) is not None or not hasattr(cls, "__slots__"):
        raise TypeError(f"{cls.__name__} must be a slotted dataclass without __post_init__")
    setters = tuple(getattr(cls, field.name).__set__ for field in fields(cls))  # type: ignore[arg-type]
    new = object.__new__

    def build(*values: Any) -> T:
        built = new(cls)
        for set_field, value in zip(setters, values, strict=True):
            set_field(built, value)
        return built

    return build
