"""The per-family batch fast path decodes exactly what the general path decodes.

`decode_message(payload, family=...)` skips the per-member discriminator when every member is a
valid event of the topic's family. It must never accept what the general path would reject, nor
change what it returns; anything unusual falls back to the general path.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.codecs import (
    DecodedMessage,
    EventRejected,
    _decode_family_batch,
    decode_message,
    encode_batch,
)
from tests import factories

FAMILIES: dict[str, Callable[[int], Any]] = {
    "bmi-screening": factories.bmi,
    "vision-screening": factories.vision,
    "psych-survey": factories.survey,
    "health-record": factories.record,
    "fitness-test": factories.fitness,
}


def batch_json(family: str, count: int = 12) -> dict[str, Any]:
    make = FAMILIES[family]
    parsed: dict[str, Any] = json.loads(encode_batch([make(n) for n in range(count)]))
    return parsed


def comparable(decoded: DecodedMessage) -> tuple[Any, ...]:
    # Rejections are exceptions, which compare by identity: compare their code and reason.
    return (decoded.batch_id, decoded.events,
            tuple((index, rejected.code, rejected.reason) for index, rejected in decoded.rejected))


def general(payload: bytes) -> tuple[Any, ...] | str:
    try:
        return comparable(decode_message(payload))
    except EventRejected as rejected:
        return f"{rejected.code}: {rejected.reason}"


def with_family(payload: bytes, family: str) -> tuple[Any, ...] | str:
    try:
        return comparable(decode_message(payload, family=family))
    except EventRejected as rejected:
        return f"{rejected.code}: {rejected.reason}"


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_valid_batch_of_the_family_takes_the_fast_path_with_the_same_result(family: str) -> None:
    payload = json.dumps(batch_json(family)).encode()
    fast = _decode_family_batch(payload, family)
    assert fast is not None
    assert comparable(fast) == general(payload)
    assert len(fast.events) == 12 and not fast.rejected


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(batch: dict[str, Any]) -> None:
        target: Any = batch
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value
    return mutate


def _delete(path: tuple[Any, ...]) -> Callable[[dict[str, Any]], None]:
    def mutate(batch: dict[str, Any]) -> None:
        target: Any = batch
        for step in path[:-1]:
            target = target[step]
        del target[path[-1]]
    return mutate


def _other_family(batch: dict[str, Any]) -> None:
    member = batch["events"][3]["schema"]
    member["family"] = "vision-screening" if member["family"] != "vision-screening" else "bmi-screening"


MUTATIONS: dict[str, Callable[[dict[str, Any]], None]] = {
    "member without schema": _delete(("events", 3, "schema")),
    "member schema without version": _delete(("events", 3, "schema", "version")),
    "member schema without family": _delete(("events", 3, "schema", "family")),
    "member version true": _set(("events", 3, "schema", "version"), True),
    "member version 1.0": _set(("events", 3, "schema", "version"), 1.0),
    "member version 2": _set(("events", 3, "schema", "version"), 2),
    "member of another family": _other_family,
    "member of an unknown family": _set(("events", 3, "schema", "family"), "x-ray"),
    "member with an extra field": _set(("events", 3, "nickname"), "x"),
    "member with a bad student key": _set(("events", 3, "student_key"), "not-a-key"),
    "envelope without schema": _delete(("schema",)),
    "envelope version true": _set(("schema", "version"), True),
    "envelope of another family": _set(("schema", "family"), "bmi-screening"),
    "envelope without batch id": _delete(("batch_id",)),
    "envelope events not a list": _set(("events",), {"0": 1}),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_anything_unusual_falls_back_and_decodes_as_the_general_path(family: str, mutation: str) -> None:
    batch = batch_json(family)
    MUTATIONS[mutation](batch)
    assert json.dumps(batch) != json.dumps(batch_json(family))  # (True == 1 == 1.0 in Python)
    payload = json.dumps(batch).encode()
    assert _decode_family_batch(payload, family) is None
    assert with_family(payload, family) == general(payload)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_batch_of_another_family_is_not_fast_decoded(family: str) -> None:
    other = next(name for name in sorted(FAMILIES) if name != family)
    payload = json.dumps(batch_json(other)).encode()
    assert _decode_family_batch(payload, family) is None
    assert with_family(payload, family) == general(payload)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(family=st.sampled_from(sorted(FAMILIES)), index=st.integers(0, 11), field=st.text(max_size=20),
       value=st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30))
def test_random_member_changes_decode_the_same_with_or_without_the_family(
        family: str, index: int, field: str, value: Any) -> None:
    batch = batch_json(family)
    member = batch["events"][index]
    # Change an existing field half of the time, add an arbitrary one otherwise.
    name = sorted(member)[len(field) % len(member)] if len(field) % 2 else field
    member[name] = value
    payload = json.dumps(batch).encode()
    assert with_family(payload, family) == general(payload)
