"""Event contracts: round trips, every rejection code with its message, batches, schema files."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from pydantic import ValidationError

from models.codecs import (
    DecodedMessage,
    EventRejected,
    decode_batch,
    decode_event,
    decode_message,
    encode_batch,
    encode_event,
    field_errors,
)
from models.contracts import (
    BATCH_MAX_BYTES,
    BATCH_MAX_EVENTS,
    EVENT_MAX_BYTES,
    BmiScreening,
    HealthRecord,
    PsychSurvey,
    VisionScreening,
)
from models.surveys import get_instrument

SECRET = b"unit-test-secret"
STUDENT_NUMBER = "G110101201503070012"
KEY = hmac.new(SECRET, STUDENT_NUMBER.encode(), hashlib.sha256).hexdigest()
OCCURRED_AT = "2025-10-14T09:30:00+08:00"


def common(family: str, fields: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A valid event of ``family`` as JSON values, with ``overrides`` applied."""
    return {
        "event_id": str(uuid4()),
        "schema": {"family": family, "version": 1},
        "occurred_at": OCCURRED_AT,
        "school_id": "5201020001",
        "student_key": KEY,
        "submitted_by": "tablet-17",
        **fields,
        **overrides,
    }


def health_record(**overrides: Any) -> dict[str, Any]:
    return common(
        "health-record",
        dict(
            action="register",
            effective_on="2025-09-01",
            county_id="520102",
            sex="female",
            birth_date="2015-03-07",
            grade=5,
            boarding=False,
            left_behind=True,
            disability=False,
        ),
        overrides,
    )


def vision(**overrides: Any) -> dict[str, Any]:
    return common(
        "vision-screening",
        dict(
            measured_on="2025-10-14",
            sex="male",
            age_months=127.2,
            ucva_right=4.9,
            ucva_left=5.0,
            se_right=-1.25,
            se_left=-0.5,
            wears_glasses=False,
            screener="nurse-3",
        ),
        overrides,
    )


def bmi(**overrides: Any) -> dict[str, Any]:
    return common(
        "bmi-screening",
        dict(
            measured_on="2025-10-14",
            sex="male",
            age_months=127.2,
            height_cm=141.5,
            weight_kg=35.2,
            screener="nurse-3",
        ),
        overrides,
    )


def survey(**overrides: Any) -> dict[str, Any]:
    return common(
        "psych-survey",
        dict(
            answered_on="2025-10-14",
            sex="female",
            age_months=160.0,
            instrument="phq-9",
            instrument_version="1",
            answers=[0, 1, 2, 3, 0, 1, 2, 1, 0],
        ),
        overrides,
    )


def fitness(**overrides: Any) -> dict[str, Any]:
    return common(
        "fitness-test",
        dict(
            measured_on="2025-10-14",
            sex="female",
            grade=8,
            height_cm=158.0,
            weight_kg=48.5,
            vital_capacity_ml=2600,
            run_50m_s=9.1,
            sit_and_reach_cm=14.5,
            sit_ups_count=38,
            standing_long_jump_cm=172,
            run_800m_s=228.0,
            screener="pe-teacher-2",
        ),
        overrides,
    )


VALID = {
    "health-record": health_record,
    "vision-screening": vision,
    "bmi-screening": bmi,
    "psych-survey": survey,
    "fitness-test": fitness,
}


def valid_payloads() -> list[dict[str, Any]]:
    """One valid JSON object per family (the property tests mutate these)."""
    return [make() for make in VALID.values()]


def rejection(payload: Any, decode: Any = decode_event) -> EventRejected:
    with pytest.raises(EventRejected) as caught:
        decode(payload)
    return caught.value


def as_bytes(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


# --- round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize("family", list(VALID))
def test_each_family_round_trips(family: str) -> None:
    payload = VALID[family]()
    event = decode_event(as_bytes(payload))
    assert event.schema_.family == family
    assert event.schema_.version == 1
    assert event.event_id == UUID(payload["event_id"])
    assert event.student_key == KEY

    encoded = encode_event(event)
    assert decode_event(encoded) == event
    wire = json.loads(encoded)
    assert wire["schema"] == {"family": family, "version": 1}
    assert "schema_" not in wire
    # Compact: no whitespace between tokens.
    assert b", " not in encoded and b": " not in encoded


def test_bytes_text_and_mapping_decode_alike() -> None:
    payload = bmi()
    from_bytes = decode_event(as_bytes(payload))
    assert decode_event(json.dumps(payload)) == from_bytes
    assert decode_event(payload) == from_bytes
    assert decode_event(bytearray(as_bytes(payload))) == from_bytes


def test_mapping_may_hold_python_values() -> None:
    payload = bmi(
        event_id=uuid4(),
        occurred_at=datetime(2025, 10, 14, 1, 30, tzinfo=UTC),
        measured_on=date(2025, 10, 14),
    )
    event = decode_event(payload)
    assert event.event_id == payload["event_id"]
    assert event.occurred_at == payload["occurred_at"]


def test_decoded_values_are_typed_and_frozen() -> None:
    event = decode_event(as_bytes(health_record()))
    assert isinstance(event, HealthRecord)
    assert event.effective_on == date(2025, 9, 1)
    assert event.occurred_at.utcoffset() == timedelta(hours=8)
    with pytest.raises(ValueError, match="frozen"):
        event.grade = 6


def test_optional_fields_may_be_omitted() -> None:
    payload = vision()
    del payload["se_right"], payload["se_left"]
    event = decode_event(payload)
    assert isinstance(event, VisionScreening)
    assert event.se_right is None and event.se_left is None
    assert event.supersedes is None


def test_correction_names_the_event_it_supersedes() -> None:
    earlier = decode_event(bmi())
    correction = decode_event(bmi(supersedes=str(earlier.event_id), height_cm=142.0))
    assert correction.supersedes == earlier.event_id


def test_python_construction_fills_in_the_schema() -> None:
    event = decode_event(bmi())
    assert isinstance(event, BmiScreening)
    rebuilt = BmiScreening(**event.model_dump(exclude={"schema_"}))
    assert rebuilt == event
    assert json.loads(encode_event(rebuilt))["schema"] == {"family": "bmi-screening", "version": 1}


# --- rejections ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (b"{", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"[1, 2]", "expected a JSON object, got an array"),
        (b"null", "expected a JSON object, got null"),
        (b'"text"', "expected a JSON object"),
    ],
)
def test_not_json(payload: bytes, fragment: str) -> None:
    rejected = rejection(payload)
    assert rejected.code == "not_json"
    assert fragment in rejected.reason


def test_unknown_family() -> None:
    rejected = rejection(bmi(schema={"family": "blood-pressure", "version": 1}))
    assert rejected.code == "unknown_family"
    assert rejected.reason.startswith("schema.family: 'blood-pressure' is not a known family")


def test_batch_where_an_event_is_expected_is_an_unknown_family() -> None:
    batch = encode_batch([decode_event(bmi())])
    rejected = rejection(batch)
    assert rejected.code == "unknown_family"
    assert "batch" in rejected.reason


@pytest.mark.parametrize("version", [2, 0, "1", True, None, 1.0])
def test_unsupported_version(version: object) -> None:
    rejected = rejection(bmi(schema={"family": "bmi-screening", "version": version}))
    assert rejected.code == "unsupported_version"
    assert rejected.reason.startswith("schema.version:")


def test_unsupported_version_names_the_family_and_what_is_supported() -> None:
    rejected = rejection(bmi(schema={"family": "bmi-screening", "version": 2}))
    assert rejected.reason == "schema.version: bmi-screening version 2 is not supported (supported: 1)"


@pytest.mark.parametrize(
    "schema", [None, "bmi-screening", {"version": 1}, {"family": 7, "version": 1}]
)
def test_missing_or_malformed_schema(schema: object) -> None:
    payload = bmi()
    if schema is None:
        del payload["schema"]
    else:
        payload["schema"] = schema
    rejected = rejection(payload)
    assert rejected.code in {"invalid_field", "unknown_family"}
    assert rejected.reason.startswith("schema")


def test_out_of_range_names_family_field_value_and_range() -> None:
    rejected = rejection(bmi(height_cm=512.0))
    assert rejected.code == "invalid_field"
    assert rejected.reason == "bmi-screening.height_cm: 512.0 outside 50..230"


@pytest.mark.parametrize(
    ("make", "overrides", "field", "fragment"),
    [
        (bmi, {"weight_kg": 9.5}, "weight_kg", "9.5 outside 10..250"),
        (bmi, {"height_cm": "141.5"}, "height_cm", "expected a number"),
        (bmi, {"height_cm": float("nan")}, "height_cm", "finite"),
        (bmi, {"sex": "M"}, "sex", "expected 'male' or 'female'"),
        (bmi, {"age_months": -2.5}, "age_months", "measured before birth"),
        (bmi, {"age_months": 0}, "age_months", "measured before birth"),
        (bmi, {"age_months": 300.0}, "age_months", "outside 0..300"),
        (bmi, {"measured_on": "2025-10-16"}, "measured_on", "in the future"),
        (bmi, {"measured_on": "14/10/2025"}, "measured_on", "expected a date"),
        (bmi, {"occurred_at": "2025-10-14T09:30:00"}, "occurred_at", "UTC offset"),
        (bmi, {"event_id": "not-a-uuid"}, "event_id", "expected a UUID"),
        (bmi, {"screener": "Wang Fang"}, "screener", "not a name"),
        (bmi, {"submitted_by": "teacher@school.cn"}, "submitted_by", "not a name"),
        (bmi, {"school_id": ""}, "school_id", "expected at least 1"),
        (bmi, {"colour": "blue"}, "colour", "unexpected field"),
        (health_record, {"grade": 10}, "grade", "10 outside 1..9"),
        (health_record, {"grade": 0}, "grade", "0 outside 1..9"),
        (health_record, {"grade": 5.0}, "grade", "expected an integer"),
        (health_record, {"boarding": 1}, "boarding", "expected true or false"),
        (health_record, {"action": "expel"}, "action", "expected 'register', 'update'"),
        (health_record, {"action": "transfer"}, "to_school_id", "required when action is transfer"),
        (health_record, {"to_school_id": "5201020002"}, "to_school_id", "only allowed"),
        (
            health_record,
            {"action": "transfer", "to_school_id": "5201020001"},
            "to_school_id",
            "the receiving school is the sending school",
        ),
        (health_record, {"birth_date": "2025-09-02"}, "birth_date", "not before effective_on"),
        (health_record, {"birth_date": "1990-01-01"}, "birth_date", "implausible"),
        (health_record, {"effective_on": "2025-10-20"}, "effective_on", "in the future"),
        (vision, {"ucva_right": 4.85}, "ucva_right", "not 5-point notation"),
        (vision, {"ucva_left": 5.4}, "ucva_left", "5.4 outside 3.0..5.3"),
        (vision, {"se_left": 25.0}, "se_left", "25.0 outside -30..20"),
        (vision, {"wears_glasses": "no"}, "wears_glasses", "expected true or false"),
        (survey, {"answers": [0, 1, 2]}, "answers", "expected 9 answers, got 3"),
        (survey, {"answers": [0, 1, 2, 3, 0, 1, 2, 1, 4]}, "answers", "item 9"),
        (survey, {"answers": [0, 1, 2, 3, 0, 1, 2, 1, True]}, "answers.8", "expected an integer"),
        (survey, {"answers": []}, "answers", "at least 1"),
        (survey, {"instrument": "phq-99"}, "instrument", "unknown instrument"),
        (survey, {"instrument_version": "7"}, "instrument", "unknown instrument"),
        (survey, {"answered_on": "2025-12-01"}, "answered_on", "in the future"),
    ],
)
def test_invalid_field_message_names_the_field(
    make: Any, overrides: dict[str, Any], field: str, fragment: str
) -> None:
    payload = make(**overrides)
    rejected = rejection(payload)
    assert rejected.code == "invalid_field"
    family = payload["schema"]["family"]
    assert rejected.reason.startswith(f"{family}.{field}: "), rejected.reason
    assert fragment in rejected.reason


def test_date_one_day_after_occurrence_is_allowed_for_time_zones() -> None:
    event = decode_event(bmi(occurred_at="2025-10-14T23:30:00+00:00", measured_on="2025-10-15"))
    assert isinstance(event, BmiScreening)
    assert event.measured_on == date(2025, 10, 15)


def test_event_cannot_supersede_itself() -> None:
    payload = bmi()
    rejected = rejection({**payload, "supersedes": payload["event_id"]})
    assert rejected.reason == "bmi-screening.supersedes: an event cannot supersede itself"


def test_phq_a_accepts_its_supplementary_items() -> None:
    answers = [1] * 9 + [0, 2, 1, 0]
    get_instrument("phq-a").check_answers(answers)
    event = decode_event(survey(instrument="phq-a", answers=answers))
    assert isinstance(event, PsychSurvey)
    assert event.answers == tuple(answers)


def test_several_problems_are_all_named() -> None:
    rejected = rejection(bmi(height_cm=20, weight_kg=400, sex="x", screener=""))
    for field in ("height_cm", "weight_kg", "sex"):
        assert f"bmi-screening.{field}:" in rejected.reason
    assert "(and 1 more)" in rejected.reason


@pytest.mark.parametrize(
    "key",
    [
        KEY.upper(),
        KEY[:-1],
        KEY + "0",
        "z" * 64,
        STUDENT_NUMBER,
        "110101201503070012",
        "Zhang Wei",
        "张伟",
        "",
    ],
)
def test_student_key_must_be_64_lowercase_hex(key: str) -> None:
    rejected = rejection(bmi(student_key=key))
    assert rejected.code == "invalid_field"
    assert rejected.reason.startswith("bmi-screening.student_key: must be exactly 64 lowercase hex")
    if key:
        assert key not in rejected.reason


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("school_id", "张三小学"),
        ("screener", "110101201503070012X"),
        ("submitted_by", "Li Lei"),
        ("sex", "110101201503070012"),
    ],
)
def test_reasons_do_not_repeat_personal_text(field: str, value: str) -> None:
    rejected = rejection(bmi(**{field: value}))
    assert rejected.code == "invalid_field"
    assert value not in rejected.reason
    assert f"a string of {len(value)} characters" in rejected.reason


def test_too_large_single_event() -> None:
    payload = as_bytes(bmi(screener="x" * (EVENT_MAX_BYTES + 1)))
    for decode in (decode_event, decode_message):
        rejected = rejection(payload, decode)
        assert rejected.code == "too_large"
        assert f"event is {len(payload)} bytes" in rejected.reason


def test_event_at_the_size_limit_is_judged_on_its_fields() -> None:
    payload = bmi(screener="")
    padding = EVENT_MAX_BYTES - len(as_bytes(payload))
    payload["screener"] = "x" * padding
    data = as_bytes(payload)
    assert len(data) == EVENT_MAX_BYTES
    assert rejection(data).code == "invalid_field"


def test_unsupported_payload_type_is_rejected() -> None:
    rejected = rejection(12345)
    assert rejected.code == "not_json"


def test_field_errors_describe_a_direct_model_validation() -> None:
    with pytest.raises(ValidationError) as caught:
        BmiScreening.model_validate_json(as_bytes(bmi(height_cm=512.0)))
    [problem] = field_errors(caught.value, BmiScreening)
    assert (problem.family, problem.field) == ("bmi-screening", "height_cm")
    assert str(problem) == "bmi-screening.height_cm: 512.0 outside 50..230"


# --- batches ---------------------------------------------------------------------------------


def batch_payload(events: list[Any], batch_id: str | None = None) -> dict[str, Any]:
    return {
        "schema": {"family": "batch", "version": 1},
        "batch_id": batch_id or str(uuid4()),
        "events": events,
    }


def test_batch_round_trips() -> None:
    events = [decode_event(make()) for make in VALID.values()]
    encoded = encode_batch(events)
    decoded, rejected = decode_batch(encoded)
    assert decoded == events
    assert rejected == []
    wire = json.loads(encoded)
    assert wire["schema"] == {"family": "batch", "version": 1}
    assert len(wire["events"]) == len(events)


def test_batch_id_is_derived_from_the_event_ids_unless_given() -> None:
    events = [decode_event(bmi()), decode_event(vision())]
    first = json.loads(encode_batch(events))["batch_id"]
    assert json.loads(encode_batch(list(events)))["batch_id"] == first
    assert json.loads(encode_batch(events[:1]))["batch_id"] != first
    chosen = uuid4()
    assert json.loads(encode_batch(events, batch_id=chosen))["batch_id"] == str(chosen)


def test_one_bad_inner_event_is_rejected_alone() -> None:
    good = [bmi(), vision(), survey()]
    bad = bmi(height_cm=512.0)
    payload = batch_payload([good[0], bad, good[1], good[2]])
    events, rejected = decode_batch(as_bytes(payload))
    assert [event.event_id for event in events] == [UUID(item["event_id"]) for item in good]
    [(index, reason)] = rejected
    assert index == 1
    assert reason.code == "invalid_field"
    assert reason.reason == "bmi-screening.height_cm: 512.0 outside 50..230"


def test_inner_rejections_keep_their_own_codes() -> None:
    payload = batch_payload(
        [
            bmi(schema={"family": "blood-pressure", "version": 1}),
            bmi(schema={"family": "bmi-screening", "version": 9}),
            "not an event",
            bmi(),
            batch_payload([]),
        ]
    )
    events, rejected = decode_batch(payload)
    assert len(events) == 1
    codes = {index: reason.code for index, reason in rejected}
    assert codes == {
        0: "unknown_family",
        1: "unsupported_version",
        2: "not_json",
        4: "unknown_family",
    }


def test_decode_message_accepts_an_event_or_a_batch() -> None:
    single = decode_message(as_bytes(bmi()))
    assert isinstance(single, DecodedMessage)
    assert not single.is_batch
    assert len(single.events) == 1 and single.rejected == ()

    batch_id = str(uuid4())
    message = decode_message(as_bytes(batch_payload([bmi(), bmi(weight_kg=1.0)], batch_id)))
    assert message.is_batch and message.batch_id == UUID(batch_id)
    assert len(message.events) == 1
    assert [index for index, _ in message.rejected] == [1]


def test_decode_message_rejects_a_bad_single_event() -> None:
    rejected = rejection(as_bytes(bmi(height_cm=512.0)), decode_message)
    assert rejected.reason == "bmi-screening.height_cm: 512.0 outside 50..230"


@pytest.mark.parametrize("decode", [decode_batch, decode_message])
def test_bad_envelope_rejects_the_whole_batch(decode: Any) -> None:
    payload = batch_payload([bmi()], batch_id="batch-7")
    rejected = rejection(payload, decode)
    assert rejected.code == "invalid_field"
    assert rejected.reason.startswith("batch.batch_id: expected a UUID")


@pytest.mark.parametrize("decode", [decode_batch, decode_message])
def test_batch_version_must_be_supported(decode: Any) -> None:
    payload = batch_payload([bmi()])
    payload["schema"]["version"] = 2
    assert rejection(payload, decode).code == "unsupported_version"


def test_decode_batch_rejects_a_single_event() -> None:
    rejected = rejection(as_bytes(bmi()), decode_batch)
    assert rejected.code == "unknown_family"
    assert "expected 'batch'" in rejected.reason


def test_decode_batch_rejects_non_json() -> None:
    assert rejection(b"\x00garbage", decode_batch).code == "not_json"
    assert rejection(b"[]", decode_batch).code == "not_json"


@pytest.mark.parametrize("decode", [decode_batch, decode_message])
def test_batch_with_too_many_events_is_too_large(decode: Any) -> None:
    one = bmi()
    payload = batch_payload([one] * (BATCH_MAX_EVENTS + 1))
    rejected = rejection(as_bytes(payload), decode)
    assert rejected.code == "too_large"
    assert str(BATCH_MAX_EVENTS) in rejected.reason


@pytest.mark.parametrize("decode", [decode_batch, decode_message])
def test_batch_over_the_byte_limit_is_too_large(decode: Any) -> None:
    data = b'{"schema":{"family":"batch","version":1},"events":[' + b" " * BATCH_MAX_BYTES + b"]}"
    rejected = rejection(data, decode)
    assert rejected.code == "too_large"
    assert str(BATCH_MAX_BYTES) in rejected.reason


def test_large_batch_under_the_limits_decodes() -> None:
    event = decode_event(bmi())
    events = [event.model_copy(update={"event_id": uuid4()}) for _ in range(BATCH_MAX_EVENTS)]
    encoded = encode_batch(events)
    assert EVENT_MAX_BYTES < len(encoded) <= BATCH_MAX_BYTES
    message = decode_message(encoded)
    assert len(message.events) == BATCH_MAX_EVENTS
    assert message.events[-1].event_id == events[-1].event_id


def test_encode_batch_refuses_more_than_fits() -> None:
    event = decode_event(bmi())
    with pytest.raises(ValueError, match="at most 5000"):
        encode_batch([event] * (BATCH_MAX_EVENTS + 1))


def test_same_event_ignores_when_and_by_whom_it_was_sent_but_nothing_else() -> None:
    from models.contracts import same_event
    from tests import factories

    first = factories.bmi(1)
    resent = first.model_copy(update={"occurred_at": first.occurred_at + timedelta(days=3),
                                      "submitted_by": "import-2"})
    assert same_event(first, resent)
    assert not same_event(first, factories.bmi(1, weight_kg=35.5))
    assert not same_event(first, factories.bmi(1, school="S002"))
    assert not same_event(first, factories.vision(1, event_id=str(first.event_id)))
