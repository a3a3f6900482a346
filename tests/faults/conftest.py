"""Fault-suite fixtures: the integration fixtures (own database and topics per test).

One backend per fault test, not both (the suite's time is process start-ups and group joins):
TimescaleDB where the shared cluster has it, as in production, plain PostgreSQL otherwise.
"""

from __future__ import annotations

from tests.integration.conftest import isolated, timescaledb_missing
from tests.one_backend import one_backend

__all__ = ["isolated", "one_backend", "timescaledb_missing"]
