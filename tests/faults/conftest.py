"""Fault-suite fixtures: the integration fixtures (own database and topics per test).

One backend per fault test, not both (the suite's time is process start-ups and group joins):
TimescaleDB where the shared cluster has it, as in production, plain PostgreSQL otherwise.
"""

from __future__ import annotations

import pytest

from tests.integration.conftest import isolated, timescaledb_missing


@pytest.fixture
def backend(timescaledb_missing: str | None) -> str:
    return "postgresql" if timescaledb_missing else "timescaledb"


__all__ = ["backend", "isolated", "timescaledb_missing"]
