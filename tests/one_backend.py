"""The `backend` fixture for suites that run each test once (faults, browser tests).

Import it into such a suite's conftest. TimescaleDB where the cluster has it, as in production, plain
PostgreSQL otherwise: those suites' time is process start-ups and browsers, and what differs between
the backends (schema, scoping, policies) is tested on both by the integration suite.
"""

from __future__ import annotations

import pytest


@pytest.fixture(name="backend")
def one_backend(timescaledb_missing: str | None) -> str:
    return "postgresql" if timescaledb_missing else "timescaledb"
