"""The untyped record boundary behind `schoolhealth classify`."""

from __future__ import annotations

import json

import pytest

from models.classify import RecordError, classify_record

GROWTH = {"sex": "female", "age_months": 130.5, "height_cm": 141.0, "weight_kg": 33.2}
VISION = {"age_years": 10.2, "ucva_right": 4.8, "ucva_left": 5.0, "se_right": -1.25, "se_left": 0.0}
SURVEY = {"instrument": "phq-9", "answers": [1, 1, 2, 0, 1, 0, 1, 0, 1]}


def test_growth_output_is_json_with_two_decimal_z_scores() -> None:
    output = classify_record("growth", GROWTH)
    json.dumps(output, allow_nan=False)
    for key in ("bmi", "bmi_for_age_z", "height_for_age_z"):
        value = output[key]
        assert isinstance(value, float)
        assert round(value, 2) == value
    assert output["bmi"] == round(33.2 / 1.41**2, 2)
    assert output["who_category"] in {"severe_thinness", "thinness", "normal", "overweight", "obesity"}
    assert output["wst586"] in {"normal", "overweight", "obesity"}
    assert output["wst456_wasting"] in {"normal", "mild", "moderate_severe"}
    assert output["flags"] == []
    assert "UNVERIFIED" in str(output["reference"])


def test_growth_from_dates_uses_calendar_age_for_the_wst_groups() -> None:
    record = {
        "sex": "male",
        "birth_date": "2017-03-01",
        "measured_on": "2023-03-01",
        "height_cm": 115.0,
        "weight_kg": 20.0,
    }
    output = classify_record("growth", record)
    assert output["age_months"] == round(2191 / 30.4375, 2)
    assert output["wst586"] == "normal"
    assert output["bmi_for_age_z"] is not None


def test_growth_out_of_range_age_is_not_applicable() -> None:
    output = classify_record("growth", {**GROWTH, "age_months": 40.0})
    assert output["bmi_for_age_z"] is None
    assert output["who_category"] == "not_applicable"
    reasons = output["not_applicable_reasons"]
    assert isinstance(reasons, list) and any("WHO 2007" in reason for reason in reasons)


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({k: v for k, v in GROWTH.items() if k not in ("height_cm", "weight_kg")},
         "missing field 'height_cm' and 'weight_kg'"),
        ({**GROWTH, "height_cm": None, "weight_kg": None}, "missing field 'height_cm' and 'weight_kg'"),
        ({**GROWTH, "oedema": "y"}, "field 'oedema' must be true, false or null"),
        ({k: v for k, v in GROWTH.items() if k != "age_months"}, "missing field 'age_months'"),
        ({**GROWTH, "weight": 30}, "unknown field 'weight'"),
        ({**GROWTH, "height_cm": "141"}, "field 'height_cm' must be a number, got string"),
        ({**GROWTH, "weight_kg": True}, "field 'weight_kg' must be a number, got boolean"),
        ({**GROWTH, "age_months": None}, "field 'age_months' must be a number, got null"),
        ({**GROWTH, "sex": "F"}, "field 'sex' must be 'male' or 'female'"),
        ({**GROWTH, "height_cm": 1.41}, "height_cm 1.41 is outside 50..250 cm"),
        ({**GROWTH, "weight_kg": 10**400}, "field 'weight_kg' is too large"),
        ({**GROWTH, "birth_date": "2015-01-01"}, "not both"),
        (
            {"sex": "male", "birth_date": "2015-01-01", "height_cm": 140.0, "weight_kg": 30.0},
            "missing field 'measured_on'",
        ),
        (
            {
                "sex": "male",
                "birth_date": "2015-13-01",
                "measured_on": "2025-01-01",
                "height_cm": 140.0,
                "weight_kg": 30.0,
            },
            "field 'birth_date' must be an ISO date",
        ),
        (
            {
                "sex": "male",
                "birth_date": "2025-01-02",
                "measured_on": "2025-01-01",
                "height_cm": 140.0,
                "weight_kg": 30.0,
            },
            "before birth_date",
        ),
    ],
)
def test_growth_record_errors_name_the_field(record: dict[str, object], message: str) -> None:
    with pytest.raises(RecordError, match=message):
        classify_record("growth", record)


def test_vision_output() -> None:
    output = classify_record("vision", VISION)
    json.dumps(output, allow_nan=False)
    assert output["student_grade"] == "moderate"
    assert output["screening_myopia"] is True
    assert output["myopia_grade"] == "low"


def test_vision_se_may_be_null_or_absent() -> None:
    absent = {k: v for k, v in VISION.items() if k != "se_left"}
    assert classify_record("vision", {**VISION, "se_right": None})["screening_myopia"] is None
    assert classify_record("vision", absent)["myopia_grade_left"] is None


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({**VISION, "ucva_right": 5.5}, "ucva_right 5.5 is outside 3..5.3"),
        ({**VISION, "se_left": "-1"}, "field 'se_left' must be a number, got string"),
        ({**VISION, "wears_glasses": "yes"}, "field 'wears_glasses' must be true or false"),
        ({**VISION, "vision": 1}, "unknown field 'vision'"),
        ({k: v for k, v in VISION.items() if k != "age_years"}, "missing field 'age_years'"),
    ],
)
def test_vision_record_errors(record: dict[str, object], message: str) -> None:
    with pytest.raises(RecordError, match=message):
        classify_record("vision", record)


def test_survey_output() -> None:
    output = classify_record("survey", SURVEY)
    json.dumps(output, allow_nan=False)
    assert (output["total"], output["band"], output["positive_screen"]) == (7, "mild", False)
    assert output["safety_flags"] == ["self_harm_item9"]
    lowered = classify_record("survey", {**SURVEY, "positive_cutoff": 7})
    assert lowered["positive_screen"] is True


def test_health_literacy_output_has_aspects() -> None:
    output = classify_record("survey", {"instrument": "hl-student", "version": "1", "answers": [1] * 10 + [2] * 15})
    assert output["literate"] is True
    assert output["dimension_scores"] == {"knowledge": 10, "lifestyle": 20, "skills": 10}


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({**SURVEY, "answers": [1, 1, 4, 0, 1, 0, 1, 0, 1]}, "item 3: answer 4 outside 0..3"),
        ({**SURVEY, "answers": "111"}, "field 'answers' must be a list of integers, got string"),
        ({**SURVEY, "version": 1}, "field 'version' must be a string, got int"),
        ({**SURVEY, "version": "2"}, "unknown instrument 'phq-9' version '2'"),
        ({**SURVEY, "instrument": "scl-90"}, "unknown instrument 'scl-90'"),
        ({**SURVEY, "positive_cutoff": 10.5}, "field 'positive_cutoff' must be an integer"),
        ({"answers": [0] * 9}, "missing field 'instrument'"),
    ],
)
def test_survey_record_errors(record: dict[str, object], message: str) -> None:
    with pytest.raises(RecordError, match=message):
        classify_record("survey", record)


def test_unknown_kind_and_non_object_records() -> None:
    with pytest.raises(RecordError, match="unknown kind 'height'"):
        classify_record("height", GROWTH)  # type: ignore[arg-type]
    with pytest.raises(RecordError, match="must be a JSON object, got list"):
        classify_record("growth", [GROWTH])  # type: ignore[arg-type]
    with pytest.raises(RecordError, match="field names must be strings"):
        classify_record("growth", {1: "x"})  # type: ignore[dict-item]
