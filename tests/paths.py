"""The repository's root, for tests that read its files or run its commands, wherever the test sits."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
