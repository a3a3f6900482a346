"""Screening models: features, labels, split and metrics on hand-built histories; artifact safety."""

from __future__ import annotations

import json
import math
from datetime import date

import numpy as np
import pytest

from models.school_year import school_year
from models.screening import (
    FEATURE_NAMES,
    MODEL_CARD_SECTIONS,
    TASKS,
    CounsellingOutcome,
    GrowthObservation,
    ModelCard,
    StatusObservation,
    StudentHistory,
    SurveyObservation,
    VisionObservation,
    build_samples,
    calibration_bins,
    depression_label,
    depression_label_source,
    evaluate,
    feature_vector,
    myopia_onset_label,
    overweight_label,
    subgroup_metrics,
    task,
    time_split,
)

KEY = "a" * 64
URBAN = {"S1": True, "S2": False}


def vision(day: date, se: float | None, *, myopic: bool | None, ucva: float = 5.0,
           school: str = "S1") -> VisionObservation:
    return VisionObservation(measured_on=day, school_id=school, ucva_right=ucva, ucva_left=ucva + 0.1,
                             se_right=se, se_left=None if se is None else se + 0.25, wears_glasses=False,
                             screening_myopia=myopic)


def growth(day: date, z: float, category: str = "normal", school: str = "S1") -> GrowthObservation:
    return GrowthObservation(measured_on=day, school_id=school, bmi_z=z, height_z=0.1, wst586=category)


def phq(day: date, total: int, items: tuple[int, ...] | None = None) -> SurveyObservation:
    return SurveyObservation(answered_on=day, school_id="S1", instrument="phq-a", total=total,
                             positive_screen=total >= 10, item_answers=items)


def status(day: date, *, grade: int, left_behind: bool = False, school: str = "S1") -> StatusObservation:
    return StatusObservation(effective_on=day, school_id=school, grade=grade, boarding=False,
                             left_behind=left_behind, disability=False)


def history(**parts: object) -> StudentHistory:
    return StudentHistory(student_key=KEY, sex="female", birth_date=date(2013, 3, 1),
                          status=(status(date(2022, 9, 1), grade=4),), **parts)  # type: ignore[arg-type]


def test_school_year_starts_in_september() -> None:
    assert school_year(date(2023, 8, 31)) == 2022
    assert school_year(date(2023, 9, 1)) == 2023


def test_myopia_onset_label_needs_a_non_myopic_start_and_a_next_screening() -> None:
    onset = history(vision=(vision(date(2022, 10, 1), -0.25, myopic=False),
                            vision(date(2023, 10, 1), -1.0, myopic=True, ucva=4.7)))
    assert myopia_onset_label(onset, 2022) is True
    stays = history(vision=(vision(date(2022, 10, 1), 0.0, myopic=False),
                            vision(date(2023, 10, 1), -0.25, myopic=False)))
    assert myopia_onset_label(stays, 2022) is False
    already = history(vision=(vision(date(2022, 10, 1), -1.5, myopic=True),
                              vision(date(2023, 10, 1), -2.0, myopic=True)))
    assert myopia_onset_label(already, 2022) is None
    assert myopia_onset_label(onset, 2023) is None  # no screening in 2024


def test_overweight_label_only_from_normal() -> None:
    rising = history(growth=(growth(date(2022, 10, 1), 0.9), growth(date(2023, 10, 1), 1.3, "overweight")))
    assert overweight_label(rising, 2022) is True
    heavy = history(growth=(growth(date(2022, 10, 1), 2.2, "obesity"), growth(date(2023, 10, 1), 2.3, "obesity")))
    assert overweight_label(heavy, 2022) is None
    unclassified = history(growth=(growth(date(2022, 10, 1), 0.1), growth(date(2023, 10, 1), 0.0, "not_applicable")))
    assert overweight_label(unclassified, 2022) is None


def test_depression_label_is_the_next_autumn_term() -> None:
    h = history(surveys=(phq(date(2022, 10, 20), 4), phq(date(2023, 4, 20), 8),
                         phq(date(2023, 10, 20), 12), phq(date(2024, 4, 20), 3)))
    assert depression_label(h, 2022) is True
    assert depression_label(h, 2023) is None  # no autumn 2024 survey
    spring_only = history(surveys=(phq(date(2022, 10, 20), 4), phq(date(2024, 4, 20), 15)))
    assert depression_label(spring_only, 2022) is None


def closed(day: date, concern: str = "depression", *, outcome: str | None = "concern_confirmed",
           state: str = "resolved") -> CounsellingOutcome:
    return CounsellingOutcome(observed_on=day, concern=concern, state=state, outcome=outcome)


SURVEYS = (phq(date(2022, 10, 20), 4), phq(date(2023, 4, 20), 8), phq(date(2023, 10, 20), 12))


@pytest.mark.parametrize(("outcome", "state", "expected"), [
    ("concern_confirmed", "resolved", True),
    ("support_in_school", "resolved", True),
    (None, "referred", True),
    ("concern_not_confirmed", "resolved", False),
])
def test_a_counsellors_finding_next_term_is_the_depression_label(outcome: str | None, state: str,
                                                                   expected: bool) -> None:
    # The autumn 2023 screen is positive (12); the counsellor's finding on its alert decides.
    h = history(surveys=SURVEYS, counselling=(closed(date(2023, 10, 20), outcome=outcome, state=state),))
    assert depression_label(h, 2022) is expected
    assert depression_label_source(h, 2022) == "counselling_outcome"


def test_a_self_harm_finding_labels_a_student_whose_screen_was_negative() -> None:
    below_cut_off = (phq(date(2022, 10, 20), 4), phq(date(2023, 4, 20), 6), phq(date(2023, 10, 20), 7))
    h = history(surveys=below_cut_off, counselling=(closed(date(2023, 10, 20), "self_harm"),))
    assert depression_label(h, 2022) is True
    assert depression_label(history(surveys=below_cut_off), 2022) is False


@pytest.mark.parametrize("ignored", [
    closed(date(2023, 10, 20), outcome="parents_informed"),  # says nothing about the concern
    closed(date(2023, 10, 20), outcome="student_left"),
    closed(date(2023, 10, 20), "anxiety"),  # not the depression model's concern
    closed(date(2023, 4, 20)),  # spring: the features' year, not the label term
    closed(date(2024, 10, 20)),  # a later term
])
def test_outcomes_that_do_not_speak_to_the_label_term_leave_the_screen(ignored: CounsellingOutcome) -> None:
    h = history(surveys=SURVEYS, counselling=(ignored,))
    assert depression_label(h, 2022) is True  # the autumn 2023 screen
    assert depression_label_source(h, 2022) == "screening"


def test_any_confirmed_concern_outweighs_one_not_confirmed() -> None:
    h = history(surveys=SURVEYS, counselling=(closed(date(2023, 10, 20), outcome="concern_not_confirmed"),
                                              closed(date(2023, 11, 5), "self_harm")))
    assert depression_label(h, 2022) is True


def test_an_outcome_without_the_origin_years_survey_gives_no_sample() -> None:
    h = history(surveys=(phq(date(2023, 10, 20), 12),), counselling=(closed(date(2023, 10, 20)),))
    assert depression_label(h, 2022) is None


def test_samples_record_where_each_label_came_from() -> None:
    confirmed = history(surveys=SURVEYS, counselling=(closed(date(2023, 10, 20), outcome="concern_not_confirmed"),))
    plain = history(surveys=SURVEYS)
    samples = build_samples([confirmed, plain], task("depression"), [2022], URBAN)
    assert list(samples.labels) == [False, True]
    assert samples.label_sources == ("counselling_outcome", "screening")
    assert samples.label_source_counts() == {"counselling_outcome": 1, "screening": 1}
    assert samples.subset(np.array([False, True])).label_sources == ("screening",)


def test_features_read_trajectories_and_nothing_from_the_future() -> None:
    h = history(
        vision=(vision(date(2021, 10, 1), 0.5, myopic=False), vision(date(2022, 10, 1), -0.25, myopic=False),
                vision(date(2023, 10, 1), -2.0, myopic=True, ucva=4.5)),
        growth=(growth(date(2021, 10, 1), 0.5), growth(date(2022, 10, 1), 1.0)),
        surveys=(phq(date(2022, 10, 20), 6, (1, 1, 0, 1, 0, 1, 1, 0, 1)), phq(date(2023, 4, 20), 11),
                 phq(date(2023, 10, 20), 20)),
    )
    f = dict(zip(FEATURE_NAMES, feature_vector(h, 2022, URBAN), strict=True))
    assert f["se_worse"] == -0.25  # the 2023 screening is not read
    assert f["se_worse_previous"] == 0.5
    assert f["se_change_per_year"] == pytest.approx(-0.75 / (365 / 365.25))
    assert f["screening_myopia"] == 0.0
    assert f["bmi_z_change_per_year"] == pytest.approx(0.5, rel=0.01)
    assert f["phq_total"] == 11 and f["phq_total_previous"] == 6 and f["phq_change"] == 5
    assert f["phq_positive_count"] == 1 and f["phq_surveys"] == 2
    assert math.isnan(f["phq_item_9"])  # the newest PHQ-A kept no items
    assert f["female"] == 1.0 and f["urban"] == 1.0 and f["grade"] == 4
    assert f["age_years"] == pytest.approx(10.5, abs=0.01)
    assert math.isnan(f["gad_total"])


def test_features_take_special_groups_and_school_as_of_the_year() -> None:
    h = StudentHistory(
        student_key=KEY, sex="male", birth_date=date(2012, 1, 1),
        status=(status(date(2022, 9, 1), grade=5), status(date(2023, 7, 10), grade=5, left_behind=True, school="S2"),
                status(date(2024, 9, 10), grade=6, school="S2")),
        growth=(growth(date(2022, 10, 1), 0.0), growth(date(2023, 10, 1), 0.0, school="S2")),
    )
    f2022 = dict(zip(FEATURE_NAMES, feature_vector(h, 2022, URBAN), strict=True))
    f2023 = dict(zip(FEATURE_NAMES, feature_vector(h, 2023, URBAN), strict=True))
    assert f2022["left_behind"] == 1.0  # recorded before the end of school year 2022
    assert f2022["urban"] == 1.0 and f2023["urban"] == 0.0
    assert f2023["left_behind"] == 1.0 and f2023["grade"] == 6  # grade 5 recorded in 2022, one year on


def test_build_samples_and_time_split() -> None:
    histories = [
        StudentHistory(student_key=f"{i:064x}", sex="male" if i % 2 else "female", birth_date=date(2013, 1, 1),
                       vision=tuple(vision(date(2020 + y, 10, 1), 0.5 - 0.3 * y * (i % 3),
                                           myopic=bool(i % 3 and y == 3)) for y in range(4)))
        for i in range(30)
    ]
    samples = build_samples(histories, task("myopia_onset"), (2020, 2021, 2022), URBAN)
    assert samples.features.shape == (len(samples), len(FEATURE_NAMES))
    assert set(samples.origin_years.tolist()) == {2020, 2021, 2022}
    assert samples.labels[samples.origin_years == 2022].sum() == 20
    train, test = time_split(samples.origin_years)
    assert (samples.origin_years[train] < 2022).all() and (samples.origin_years[test] == 2022).all()
    scoring = build_samples(histories, task("myopia_onset"), (2023,), URBAN, labelled=False)
    assert len(scoring) == 10  # the ten never-myopic students are eligible
    with pytest.raises(ValueError, match="needs samples"):
        time_split(np.array([2022, 2022]))


def test_metrics_against_known_values() -> None:
    y = np.array([0, 0, 1, 1], dtype=bool)
    perfect = evaluate(y, [0.1, 0.2, 0.8, 0.9])
    assert perfect.roc_auc == 1.0 and perfect.pr_auc == 1.0
    assert perfect.brier == pytest.approx((0.01 + 0.04 + 0.04 + 0.01) / 4)
    reversed_ = evaluate(y, [0.9, 0.8, 0.2, 0.1])
    assert reversed_.roc_auc == 0.0
    tied = evaluate(y, [0.5, 0.5, 0.5, 0.5])
    assert tied.roc_auc == 0.5 and tied.pr_auc == 0.5
    one_class = evaluate(np.zeros(3, dtype=bool), [0.1, 0.2, 0.3])
    assert one_class.roc_auc is None and one_class.brier == pytest.approx((0.01 + 0.04 + 0.09) / 3)
    with pytest.raises(ValueError, match="NaN"):
        evaluate(y, [0.1, math.nan, 0.2, 0.3])


def test_calibration_bins_recover_the_rates_of_calibrated_scores() -> None:
    rng = np.random.default_rng(7)
    p = rng.uniform(0, 1, 20_000)
    y = rng.uniform(0, 1, 20_000) < p
    bins = calibration_bins(y, p, bins=5)
    assert len(bins) == 5 and sum(b.n for b in bins) == 20_000
    for b in bins:
        assert abs(b.mean_predicted - b.observed_rate) < 0.03
    skewed = calibration_bins(y, p / 2, bins=5)
    assert all(b.observed_rate > b.mean_predicted + 0.05 for b in skewed[1:])


def test_subgroup_metrics_split_by_group() -> None:
    y = np.array([0, 1, 0, 1, 0, 0], dtype=bool)
    p = np.array([0.1, 0.9, 0.8, 0.2, 0.3, 0.4])
    result = {(s.group, s.value): s.metrics for s in subgroup_metrics(y, p, {"sex": ("f", "f", "m", "m", "m", "f")})}
    assert result[("sex", "f")].roc_auc == 1.0
    assert result[("sex", "m")].roc_auc == 0.0
    assert result[("sex", "f")].n == 3


def test_model_card_has_every_section_and_valid_json() -> None:
    y = np.array([0, 1, 0, 1, 1, 0], dtype=bool)
    p = np.array([0.2, 0.7, 0.4, 0.6, 0.9, 0.1])
    metrics = evaluate(y, p)
    card = ModelCard(
        name="overweight", version="v1", title=TASKS[1].title, label=TASKS[1].label_text, created_at="now",
        algorithm="test", calibration_method="none", features=FEATURE_NAMES, train_years=(2022,), test_year=2023,
        train=metrics, test=metrics, calibration=calibration_bins(y, p, bins=2),
        subgroups=subgroup_metrics(y, p, {"sex": ("f",) * 6}), true_risk=evaluate(y, np.where(y, 0.8, 0.2)),
        model_on_true_risk_rows=metrics, limitations=("synthetic",),
    )
    markdown = card.to_markdown()
    for section in MODEL_CARD_SECTIONS:
        assert f"## {section}\n" in markdown
    assert "not a diagnosis" in markdown
    assert card.auc_gap == pytest.approx(1.0 - metrics.roc_auc)  # type: ignore[operator]
    assert json.loads(card.to_json())["auc_gap"] == pytest.approx(card.auc_gap)


# --- Artifacts: sha256 and trusted types (the adapter, no database needed) ----------------------


def _small_model() -> object:
    from services.screening_models.service import _new_model

    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 4))
    x[::5, 2] = np.nan
    return _new_model(0).fit(x, x[:, 0] + rng.normal(size=300) > 0)


def test_artifact_round_trip_and_tampering_fails_on_sha256() -> None:
    from services.screening_models.service import ArtifactError, dump_artifact, load_artifact

    model = _small_model()
    data, digest = dump_artifact(model)
    x = np.array([[0.5, 0.0, math.nan, 1.0]])
    loaded = load_artifact(data, expected_sha256=digest)
    assert np.allclose(loaded.predict_proba(x), model.predict_proba(x))  # type: ignore[attr-defined]
    tampered = bytearray(data)
    tampered[len(tampered) // 2] ^= 0x01
    with pytest.raises(ArtifactError, match="sha256"):
        load_artifact(bytes(tampered), expected_sha256=digest)


def test_untrusted_types_are_refused() -> None:
    import hashlib
    import os

    import skops.io
    from sklearn.preprocessing import FunctionTransformer

    from services.screening_models.service import ArtifactError, load_artifact

    # A function reference is exactly what an attacker would smuggle in an artifact.
    data = skops.io.dumps(FunctionTransformer(func=os.system))
    assert "posix.system" in skops.io.get_untrusted_types(data=data)
    with pytest.raises(ArtifactError, match="not trusted"):
        load_artifact(data, expected_sha256=hashlib.sha256(data).hexdigest())
