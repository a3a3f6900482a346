"""Small shared types of the domain core.

`NewType` ids keep a school id from being passed where a student key is expected; they cost
nothing at run time.
"""

from __future__ import annotations

from typing import Literal, NewType

Sex = Literal["male", "female"]
"""Sex as recorded at screening; the growth references are sex-specific."""

SEXES: tuple[Sex, ...] = ("male", "female")

SchoolId = NewType("SchoolId", str)
"""The education bureau's school code."""

StudentKey = NewType("StudentKey", str)
"""HMAC-SHA256 hex of the national student number; never the number itself."""
