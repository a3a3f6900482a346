"""Properties of the record boundary: absurd input only ever raises RecordError; valid input
always classifies into JSON."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from models.classify import KINDS, Kind, RecordError, classify_record
from models.growth import lms_z, value_at_z, who_lms
from models.surveys import INSTRUMENTS
from models.types import SEXES

FIELD_NAMES = [
    "sex",
    "age_months",
    "birth_date",
    "measured_on",
    "height_cm",
    "weight_kg",
    "age_years",
    "ucva_right",
    "ucva_left",
    "se_right",
    "se_left",
    "wears_glasses",
    "instrument",
    "version",
    "answers",
    "positive_cutoff",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([10**400, -(10**400)]),  # beyond float range
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["male", "female", "phq-9", "phq-a", "gad-7", "hl-student", "1", "2015-06-01", "2024-02-29"]),
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=14) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=10,
)
# Mostly the right field names with arbitrary values, so that absurd values reach the
# classifiers; sometimes a stray field as well.
records = st.fixed_dictionaries({}, optional={name: json_values for name in FIELD_NAMES}) | st.dictionaries(
    st.sampled_from(FIELD_NAMES) | st.text(max_size=8), json_values, max_size=8
)
typed_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.none(),
    st.booleans(),
    st.sampled_from(["male", "female", "2015-06-01", "2024-02-29", "1999-12-31"]),
)


def emits_json(output: dict[str, object]) -> None:
    json.loads(json.dumps(output, allow_nan=False))


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from(KINDS), record=records)
def test_absurd_records_raise_only_record_errors(kind: Kind, record: dict[str, Any]) -> None:
    try:
        output = classify_record(kind, record)
    except RecordError as error:
        assert str(error)
    else:
        emits_json(output)


@settings(max_examples=300, deadline=None)
@given(
    growth=st.fixed_dictionaries(
        {"sex": st.sampled_from([*SEXES, "x"]), "height_cm": typed_values, "weight_kg": typed_values},
        optional={"age_months": typed_values, "birth_date": typed_values, "measured_on": typed_values},
    ),
    vision=st.fixed_dictionaries(
        {"age_years": typed_values, "ucva_right": typed_values, "ucva_left": typed_values},
        optional={"se_right": typed_values, "se_left": typed_values, "wears_glasses": typed_values},
    ),
)
def test_absurd_measurements_raise_only_record_errors(growth: dict[str, Any], vision: dict[str, Any]) -> None:
    for kind, record in (("growth", growth), ("vision", vision)):
        try:
            emits_json(classify_record(kind, record))  # type: ignore[arg-type]
        except RecordError as error:
            assert str(error)


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from(KINDS), record=json_values)
def test_any_json_value_as_record_raises_only_record_errors(kind: Kind, record: Any) -> None:
    try:
        output = classify_record(kind, record)
    except RecordError:
        return
    emits_json(output)


@settings(max_examples=300, deadline=None)
@given(
    sex=st.sampled_from(SEXES),
    age_months=st.floats(min_value=0, max_value=400),
    height_cm=st.floats(min_value=50, max_value=250),
    weight_kg=st.floats(min_value=5, max_value=300),
)
def test_valid_growth_records_always_classify(sex: str, age_months: float, height_cm: float, weight_kg: float) -> None:
    output = classify_record(
        "growth", {"sex": sex, "age_months": age_months, "height_cm": height_cm, "weight_kg": weight_kg}
    )
    emits_json(output)
    in_who_range = 60 <= age_months < 229
    assert (output["bmi_for_age_z"] is not None) == in_who_range
    flags, z = output["flags"], output["bmi_for_age_z"]
    assert isinstance(flags, list)
    flagged = "implausible_bmi_for_age_z" in flags
    assert flagged == (in_who_range and isinstance(z, float) and abs(z) > 5)
    assert (output["who_category"] == "not_applicable") == (not in_who_range or flagged)


@settings(max_examples=200, deadline=None)
@given(
    sex=st.sampled_from(SEXES),
    birth=st.dates(),
    days=st.integers(min_value=0, max_value=25 * 366),
    height_cm=st.floats(min_value=50, max_value=250),
    weight_kg=st.floats(min_value=5, max_value=300),
)
def test_valid_dated_growth_records_always_classify(
    sex: str, birth: Any, days: int, height_cm: float, weight_kg: float
) -> None:
    try:
        measured = birth.fromordinal(birth.toordinal() + days)
    except (ValueError, OverflowError):
        return  # past year 9999; not a record anyone can send
    record = {
        "sex": sex,
        "birth_date": birth.isoformat(),
        "measured_on": measured.isoformat(),
        "height_cm": height_cm,
        "weight_kg": weight_kg,
    }
    emits_json(classify_record("growth", record))


optional_se = st.none() | st.floats(min_value=-30, max_value=20)


@settings(max_examples=300, deadline=None)
@given(
    record=st.fixed_dictionaries(
        {
            "age_years": st.floats(min_value=0, max_value=30),
            "ucva_right": st.floats(min_value=3.0, max_value=5.3),
            "ucva_left": st.floats(min_value=3.0, max_value=5.3),
            "se_right": optional_se,
            "se_left": optional_se,
            "wears_glasses": st.booleans(),
        }
    )
)
def test_valid_vision_records_always_classify(record: dict[str, Any]) -> None:
    output = classify_record("vision", record)
    emits_json(output)
    if record["age_years"] >= 6:
        assert output["student_grade"] in {output["right_grade"], output["left_grade"]}


@st.composite
def valid_surveys(draw: st.DrawFn) -> dict[str, object]:
    instrument = draw(st.sampled_from(list(INSTRUMENTS.values())))
    count = draw(st.sampled_from(instrument.accepted_counts))
    answers = [draw(st.integers(min_value=low, max_value=high)) for low, high in instrument.item_scales[:count]]
    return {"instrument": instrument.id, "version": instrument.version, "answers": answers}


@settings(max_examples=300, deadline=None)
@given(record=valid_surveys())
def test_valid_survey_records_always_classify(record: dict[str, Any]) -> None:
    output = classify_record("survey", record)
    emits_json(output)
    instrument = INSTRUMENTS[record["instrument"], record["version"]]
    assert output["total"] == sum(record["answers"][: instrument.scored_items])
    assert 0 <= output["total"] <= output["max_total"]  # type: ignore[operator]
    if instrument.id.startswith("phq"):
        assert ("self_harm_item9" in output["safety_flags"]) == (record["answers"][8] > 0)  # type: ignore[operator]


@settings(max_examples=300, deadline=None)
@given(
    sex=st.sampled_from(SEXES),
    age_months=st.floats(min_value=60, max_value=228),
    z=st.floats(min_value=-5, max_value=5),
)
def test_value_at_z_round_trips_on_the_restricted_scale(sex: Any, age_months: float, z: float) -> None:
    lms = who_lms("bmi", sex, age_months)
    assert abs(lms_z(lms, value_at_z(lms, z, restricted=True), restricted=True) - z) < 1e-9
