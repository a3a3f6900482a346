"""Fault-suite fixtures: the integration fixtures (own database and topics per test) and a log dir."""

from __future__ import annotations

from tests.integration.conftest import isolated

__all__ = ["isolated"]
