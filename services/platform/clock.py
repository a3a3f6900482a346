"""The clock services read: an aware UTC now, and the type of a replaceable clock (tests pass fakes)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)
