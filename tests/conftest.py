"""Shared fixtures. Integration fixtures start the project's own stack (or reuse a running one)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from services.platform.settings import Settings


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Iterator[Settings]:
    """A real Kafka broker and PostgreSQL cluster; stopped at the end only if this session started them."""
    from services.devtools.stack import Stack

    stack = Stack(settings)
    already_running = all(component.running for component in stack.status())
    if not already_running:
        stack.up()
    yield settings
    if not already_running:
        stack.down()


@pytest.fixture
def unique() -> str:
    """A short unique suffix for topic, group and database names, so tests never share state."""
    return uuid.uuid4().hex[:10]
