"""Whatever arrives on a topic, decoding either succeeds or raises ``EventRejected``."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.codecs import (
    DecodedMessage,
    EventRejected,
    decode_batch,
    decode_event,
    decode_message,
    encode_batch,
    encode_event,
)
from models.contracts import BmiScreening
from tests.unit.models.test_contracts import KEY, valid_payloads

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=25,
)
families = st.sampled_from(["health-record", "vision-screening", "bmi-screening", "psych-survey", "batch", "x"])
schema_values = st.fixed_dictionaries({"family": families, "version": json_values | st.just(1)})


def decodes_or_rejects(payload: Any) -> DecodedMessage | None:
    try:
        return decode_message(payload)
    except EventRejected as rejected:
        assert rejected.code in {
            "not_json", "unknown_family", "unsupported_version", "invalid_field", "too_large"
        }
        assert rejected.reason
        return None


@FUZZ
@given(st.binary(max_size=2048))
def test_arbitrary_bytes(payload: bytes) -> None:
    decodes_or_rejects(payload)


@FUZZ
@given(st.text(max_size=512))
def test_arbitrary_text(payload: str) -> None:
    decodes_or_rejects(payload)


@FUZZ
@given(json_values)
def test_arbitrary_json(value: Any) -> None:
    decodes_or_rejects(json.dumps(value).encode())
    if isinstance(value, dict):
        decodes_or_rejects(value)


@FUZZ
@given(st.dictionaries(st.text(max_size=12), json_values, max_size=6), schema_values)
def test_arbitrary_objects_with_a_schema(value: dict[str, Any], schema: dict[str, Any]) -> None:
    decodes_or_rejects(json.dumps({**value, "schema": schema}).encode())


@FUZZ
@given(st.sampled_from(range(len(valid_payloads()))), st.data())
def test_one_field_of_a_valid_event_replaced(which: int, data: st.DataObject) -> None:
    payload = valid_payloads()[which]
    field = data.draw(st.sampled_from([*payload, "unexpected"]))
    payload[field] = data.draw(json_values)
    for decode in (decode_event, decode_message):
        try:
            decode(json.dumps(payload).encode())
        except EventRejected as rejected:
            assert rejected.reason


@FUZZ
@given(st.lists(st.sampled_from(range(len(valid_payloads()))) | json_values, max_size=8))
def test_batch_members_are_judged_one_by_one(members: list[Any]) -> None:
    families = len(valid_payloads())
    events = [valid_payloads()[member]
              if isinstance(member, int) and 0 <= member < families and not isinstance(member, bool)
              else member for member in members]
    batch = {"schema": {"family": "batch", "version": 1}, "batch_id": str(UUID(int=7)), "events": events}
    accepted, rejected = decode_batch(json.dumps(batch).encode())
    assert len(accepted) + len(rejected) == len(events)
    assert [index for index, _ in rejected] == sorted({index for index, _ in rejected})
    message = decode_message(json.dumps(batch).encode())
    assert message.events == tuple(accepted)
    assert [index for index, _ in message.rejected] == [index for index, _ in rejected]


bmi_events = st.builds(
    BmiScreening,
    event_id=st.uuids(),
    occurred_at=st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
    ),
    school_id=st.from_regex(r"[A-Za-z0-9]{1,12}", fullmatch=True),
    student_key=st.just(KEY),
    submitted_by=st.from_regex(r"[a-z]{1,8}-[0-9]{1,3}", fullmatch=True),
    supersedes=st.none(),
    measured_on=st.dates(min_value=date(2019, 1, 1), max_value=date(2019, 12, 31)),
    sex=st.sampled_from(["male", "female"]),
    age_months=st.floats(min_value=0.01, max_value=299.99),
    height_cm=st.floats(min_value=50, max_value=230),
    weight_kg=st.floats(min_value=10, max_value=250),
    screener=st.from_regex(r"[a-z]{1,8}", fullmatch=True),
)


@settings(deadline=None)
@given(bmi_events)
def test_valid_events_round_trip(event: BmiScreening) -> None:
    assert event.measured_on <= event.occurred_at.date() + timedelta(days=1)
    assert decode_event(encode_event(event)) == event
    assert decode_batch(encode_batch([event])) == ([event], [])
