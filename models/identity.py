"""Pseudonymous identities derived at the edge.

A student is known inside the platform only by ``student_key``: the HMAC-SHA256 of the national
student number under a secret held by the importing edge. The number itself never reaches Kafka,
the archive or a log line. Keyed hashing (rather than a plain hash) matters because student
numbers are structured (region, birth date, sequence) and a plain hash could be reversed by
enumerating them.

Event ids are UUIDv5 over a fixed namespace, so a bulk import that is run twice produces the same
ids and the archive's ``ON CONFLICT DO NOTHING`` drops the repeats.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Final
from uuid import UUID, uuid5

from models.types import StudentKey

__all__ = [
    "EVENT_ID_NAMESPACE",
    "STUDENT_NUMBER_MAX_LENGTH",
    "STUDENT_NUMBER_MIN_LENGTH",
    "event_id_for",
    "normalise_student_number",
    "student_key",
]

#: Namespace of every event id this platform derives. Changing it changes every derived id.
EVENT_ID_NAMESPACE: Final = UUID("c5f8ace0-bfd7-4821-9d7f-1bb82848ab8d")

STUDENT_NUMBER_MIN_LENGTH: Final = 6
STUDENT_NUMBER_MAX_LENGTH: Final = 32

_STUDENT_NUMBER = re.compile(r"[A-Z0-9]+", re.ASCII)


def normalise_student_number(national_student_number: str) -> str:
    """Return the canonical form of a national student number (stripped, upper-case).

    Raises ``ValueError`` saying why the number is implausible. The message never repeats the
    number, so it can be logged.
    """
    number = national_student_number.strip().upper()
    if not number:
        raise ValueError("student number is empty")
    if not _STUDENT_NUMBER.fullmatch(number):
        raise ValueError(
            "student number may contain only ASCII letters and digits "
            "(no spaces, punctuation or full-width characters)"
        )
    if not STUDENT_NUMBER_MIN_LENGTH <= len(number) <= STUDENT_NUMBER_MAX_LENGTH:
        raise ValueError(
            f"student number has {len(number)} characters, expected "
            f"{STUDENT_NUMBER_MIN_LENGTH}..{STUDENT_NUMBER_MAX_LENGTH}"
        )
    if not any(character.isdigit() for character in number):
        raise ValueError("student number contains no digits")
    return number


def student_key(secret: bytes, national_student_number: str) -> StudentKey:
    """Derive the pseudonymous ``student_key``: HMAC-SHA256 hex of the normalised number.

    The same student gets the same key whatever the spacing or letter case of the input.
    Raises ``ValueError`` for an empty secret or an implausible number.
    """
    if not secret:
        raise ValueError("student key secret is empty")
    number = normalise_student_number(national_student_number)
    return StudentKey(hmac.new(secret, number.encode("ascii"), hashlib.sha256).hexdigest())


def event_id_for(*parts: str) -> UUID:
    """Deterministic event id: UUIDv5 of the parts under ``EVENT_ID_NAMESPACE``.

    The parts are encoded as a JSON array, so ``("a,b",)`` and ``("a", "b")`` give different ids.
    """
    if not parts:
        raise ValueError("event_id_for needs at least one part")
    return uuid5(EVENT_ID_NAMESPACE, json.dumps(parts, ensure_ascii=False, separators=(",", ":")))
