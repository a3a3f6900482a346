"""The shared helpers of the domain core."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest

from models.types import positional_builder


@dataclass(frozen=True, slots=True, kw_only=True)
class _Pair:
    first: int
    second: str = "default"


def test_builder_gives_the_object_the_keyword_constructor_gives() -> None:
    built = positional_builder(_Pair)(1, "two")
    assert built == _Pair(first=1, second="two")
    assert type(built) is _Pair
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.first = 2  # type: ignore[misc]  # still frozen


def test_builder_wants_every_field() -> None:
    with pytest.raises(ValueError, match="zip"):
        positional_builder(_Pair)(1)


def test_builder_refuses_classes_it_would_change_the_meaning_of() -> None:
    @dataclass(frozen=True)
    class Unslotted:
        value: int

    @dataclass(frozen=True, slots=True)
    class Checked:
        value: int

        def __post_init__(self) -> None:
            if self.value < 0:
                raise ValueError("negative")

    for cls in (Unslotted, Checked):
        with pytest.raises(TypeError, match="slotted dataclass without __post_init__"):
            positional_builder(cls)

