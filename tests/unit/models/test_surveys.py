"""Questionnaire scoring: bands at every boundary, safety flags, validation, literacy rule."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from models.surveys import (
    INSTRUMENTS,
    Instrument,
    InvalidAnswers,
    UnknownInstrument,
    get_instrument,
)


def answers_totalling(instrument: Instrument, total: int) -> list[int]:
    """Scored answers summing to `total`, filling items from item 1."""
    answers = [low for low, _ in instrument.item_scales[: instrument.scored_items]]
    remaining = total - sum(answers)
    for index in range(len(answers)):
        step = min(remaining, instrument.item_scales[index][1] - answers[index])
        answers[index] += step
        remaining -= step
    assert remaining == 0
    return answers


PHQ_BOUNDARIES = [
    (0, "minimal"),
    (4, "minimal"),
    (5, "mild"),
    (9, "mild"),
    (10, "moderate"),
    (14, "moderate"),
    (15, "moderately_severe"),
    (19, "moderately_severe"),
    (20, "severe"),
    (27, "severe"),
]
GAD_BOUNDARIES = [
    (0, "minimal"),
    (4, "minimal"),
    (5, "mild"),
    (9, "mild"),
    (10, "moderate"),
    (14, "moderate"),
    (15, "severe"),
    (21, "severe"),
]


@pytest.mark.parametrize("instrument_id", ["phq-9", "phq-a"])
@pytest.mark.parametrize(("total", "band"), PHQ_BOUNDARIES)
def test_phq_bands_at_every_boundary(instrument_id: str, total: int, band: str) -> None:
    instrument = get_instrument(instrument_id)
    result = instrument.score(answers_totalling(instrument, total))
    assert (result.total, result.band, result.max_total) == (total, band, 27)
    assert result.positive_screen is (total >= 10)


@pytest.mark.parametrize(("total", "band"), GAD_BOUNDARIES)
def test_gad7_bands_at_every_boundary(total: int, band: str) -> None:
    instrument = get_instrument("gad-7")
    result = instrument.score(answers_totalling(instrument, total))
    assert (result.total, result.band, result.max_total) == (total, band, 21)
    assert result.positive_screen is (total >= 10)
    assert result.safety_flags == ()


@pytest.mark.parametrize(("cutoff", "total", "positive"), [(11, 10, False), (11, 11, True), (10, 10, True)])
def test_phq_cut_off_is_configurable(cutoff: int, total: int, positive: bool) -> None:
    instrument = get_instrument("phq-9")
    result = instrument.score(answers_totalling(instrument, total), positive_cutoff=cutoff)
    assert result.positive_screen is positive
    assert result.positive_cutoff == cutoff


def test_item9_flag_with_total_one() -> None:
    result = get_instrument("phq-9").score([0, 0, 0, 0, 0, 0, 0, 0, 1])
    assert result.total == 1
    assert result.band == "minimal"
    assert result.positive_screen is False
    assert result.safety_flags == ("self_harm_item9",)


def test_high_total_without_item9_raises_no_flag() -> None:
    result = get_instrument("phq-9").score([3, 3, 3, 3, 3, 3, 3, 3, 0])
    assert (result.band, result.safety_flags) == ("severe", ())


def test_phq_a_supplementary_items_flag_but_do_not_count() -> None:
    instrument = get_instrument("phq-a")
    result = instrument.score([0] * 9 + [1, 3, 1, 1])
    assert result.total == 0
    assert result.safety_flags == ("suicidal_ideation_past_month", "suicide_attempt_lifetime")
    assert instrument.score([0] * 9 + [1, 3, 0, 0]).safety_flags == ()
    assert instrument.score([0] * 8 + [2]).safety_flags == ("self_harm_item9",)


@pytest.mark.parametrize(
    ("instrument_id", "answers", "message"),
    [
        ("phq-9", [0, 0, 5, 0, 0, 0, 0, 0, 0], "item 3: answer 5 outside 0..3"),
        ("phq-9", [0, 0, 0, 0, 0, 0, 0, -1, 0], "item 8: answer -1 outside 0..3"),
        ("phq-9", [0, True, 0, 0, 0, 0, 0, 0, 0], "item 2: answer True is not an integer"),
        ("phq-9", [0, 1.0, 0, 0, 0, 0, 0, 0, 0], "item 2: answer 1.0 is not an integer"),
        ("phq-9", [0] * 8, "expected 9 answers, got 8"),
        ("phq-a", [0] * 10, "expected 9 or 13 answers, got 10"),
        ("phq-a", [0] * 9 + [2, 0, 0, 0], "item 10: answer 2 outside 0..1"),
        ("gad-7", [0, 0, 0, 0, 0, 0, 4], "item 7: answer 4 outside 0..3"),
        ("hl-student", [2] + [0] * 24, "item 1: answer 2 outside 0..1"),
        ("gad-7", "0000000", "must be a list of integers"),
    ],
)
def test_bad_answers_are_rejected_with_the_item(instrument_id: str, answers: Sequence[int], message: str) -> None:
    instrument = get_instrument(instrument_id)
    with pytest.raises(InvalidAnswers, match=message):
        instrument.check_answers(answers)
    with pytest.raises(ValueError, match=message):
        instrument.score(answers)


def test_health_literacy_full_score_and_aspects() -> None:
    instrument = get_instrument("hl-student")
    assert instrument.max_total == 40
    assert [dimension.id for dimension in instrument.dimensions] == ["knowledge", "lifestyle", "skills"]
    covered = sorted(item for dimension in instrument.dimensions for item in dimension.items)
    assert covered == list(range(1, len(instrument.item_scales) + 1))


@pytest.mark.parametrize(("total", "literate"), [(31, False), (32, True), (40, True)])
def test_health_literacy_80_percent_rule_at_the_boundary(total: int, literate: bool) -> None:
    instrument = get_instrument("hl-student")
    result = instrument.score(answers_totalling(instrument, total))
    assert result.total == total
    assert result.literate is literate
    assert result.band is None
    assert result.positive_screen is None


@pytest.mark.parametrize(
    ("dimension", "items", "full"),
    [("knowledge", range(0, 10), 10), ("lifestyle", range(10, 20), 20), ("skills", range(20, 25), 10)],
)
def test_health_literacy_aspect_rule_at_the_boundary(dimension: str, items: range, full: int) -> None:
    instrument = get_instrument("hl-student")
    needed = full * 4 // 5
    for score, literate in ((needed - 1, False), (needed, True)):
        answers = [0] * 25
        remaining = score
        for index in items:
            answers[index] = min(remaining, instrument.item_scales[index][1])
            remaining -= answers[index]
        result = instrument.score(answers)
        assert dict(result.dimension_scores)[dimension] == score
        assert dict(result.dimension_literate)[dimension] is literate


def test_registry() -> None:
    assert set(INSTRUMENTS) == {("phq-9", "1"), ("phq-a", "1"), ("gad-7", "1"), ("hl-student", "1")}
    for (instrument_id, version), instrument in INSTRUMENTS.items():
        assert (instrument.id, instrument.version) == (instrument_id, version)
        assert get_instrument(instrument_id, version) is instrument
    with pytest.raises(TypeError):
        INSTRUMENTS["x", "1"] = get_instrument("phq-9")  # type: ignore[index]


@pytest.mark.parametrize(("instrument_id", "version"), [("sdq", "1"), ("phq-9", "2")])
def test_unknown_instrument(instrument_id: str, version: str) -> None:
    with pytest.raises(UnknownInstrument, match="known: phq-9@1"):
        get_instrument(instrument_id, version)
    assert issubclass(UnknownInstrument, ValueError)


@pytest.mark.parametrize(
    ("instrument_id", "cutoff", "message"),
    [
        ("phq-9", -1, "non-negative"),
        ("phq-9", 28, "above phq-9's full score 27"),
        ("hl-student", 30, "no positive screen"),
    ],
)
def test_bad_cut_offs(instrument_id: str, cutoff: int, message: str) -> None:
    instrument = get_instrument(instrument_id)
    with pytest.raises(ValueError, match=message):
        instrument.score(answers_totalling(instrument, 0), positive_cutoff=cutoff)
