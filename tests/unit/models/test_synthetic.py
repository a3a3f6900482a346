"""The synthetic province: determinism, file shape, epidemiological realism, truth, memory."""

from __future__ import annotations

import csv
import io
import itertools
import tracemalloc
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest

from models.ages import age_in_months, completed_months
from models.growth import (
    classify_growth,
)
from models.importing import (
    COLUMNS,
    RowRejected,
    parse_roster_row,
    parse_school_row,
    row_to_event,
)
from models.surveys import get_instrument
from models.synthetic import (
    HEADERS,
    KINDS,
    NOT_GENERATED,
    TRUTH_COLUMNS,
    GeneratorStats,
    ProvinceSpec,
    SyntheticRow,
    generate,
    generate_blocks,
    generate_values,
)
from models.vision import classify_vision
from services.devtools.synthetic_files import write_province

PHQ = get_instrument("phq-a")
GAD = get_instrument("gad-7")
HL = get_instrument("hl-student")


def school_year(day: date) -> int:
    return day.year if day.month >= 9 else day.year - 1


@dataclass
class Province:
    spec: ProvinceSpec
    rows: list[SyntheticRow]
    stats: GeneratorStats

    def of(self, kind: str) -> list[dict[str, str]]:
        return [row.row for row in self.rows if row.kind == kind]


@pytest.fixture(scope="module")
def province() -> Province:
    spec = ProvinceSpec(students=3000)
    stats = GeneratorStats()
    return Province(spec=spec, rows=list(generate(spec, stats)), stats=stats)


@pytest.fixture(scope="module")
def grades(province: Province) -> dict[str, tuple[int, int]]:
    """Grade and school year of each pupil's first roster row."""
    return {row["student_number"]: (int(row["grade"]), int(row["enrolled_on"][:4])) for row in province.of("roster")}


def grade_in(grades: dict[str, tuple[int, int]], number: str, year: int) -> int:
    grade, first_year = grades[number]
    return grade + year - first_year


def vision_results(province: Province) -> list[tuple[dict[str, str], bool]]:
    """(row, screening myopia) of every vision row that classifies; bad rows do not."""
    results: list[tuple[dict[str, str], bool]] = []
    for row in province.of("vision"):
        try:
            birth, measured = date.fromisoformat(row["birth_date"]), date.fromisoformat(row["measured_on"])
            result = classify_vision(
                age_years=age_in_months(birth, measured) / 12,
                ucva_right=float(row["ucva_right"]),
                ucva_left=float(row["ucva_left"]),
                se_right=float(row["se_right"]),
                se_left=float(row["se_left"]),
            )
        except ValueError:
            continue
        assert result.screening_myopia is not None
        results.append((row, result.screening_myopia))
    return results


def growth_results(province: Province) -> list[tuple[dict[str, str], str]]:
    """(row, WS/T 586 class) of every bmi row that classifies."""
    results: list[tuple[dict[str, str], str]] = []
    for row in province.of("bmi"):
        try:
            birth, measured = date.fromisoformat(row["birth_date"]), date.fromisoformat(row["measured_on"])
            result = classify_growth(
                sex=row["sex"],  # type: ignore[arg-type]
                age_months=age_in_months(birth, measured),
                height_cm=float(row["height_cm"]),
                weight_kg=float(row["weight_kg"]),
                calendar_months=completed_months(birth, measured),
            )
        except ValueError:
            continue
        assert not result.flags, result.flags
        results.append((row, result.wst586))
    return results


def answers(row: dict[str, str]) -> list[int] | None:
    try:
        values = [int(item) for item in row["answers"].split(";")]
        get_instrument(row["instrument"]).check_answers(values)
        age_in_months(date.fromisoformat(row["birth_date"]), date.fromisoformat(row["answered_on"]))
    except ValueError:
        return None
    return values


def auc(scores: list[float], outcomes: list[bool]) -> float:
    """Area under the ROC curve by the rank-sum (Mann-Whitney) formula, ties averaged."""
    values = np.asarray(scores)
    positive = np.asarray(outcomes)
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ranks = (np.bincount(inverse, weights=ranks) / counts)[inverse]
    n_positive = int(positive.sum())
    n_negative = len(values) - n_positive
    return float((ranks[positive].sum() - n_positive * (n_positive + 1) / 2) / (n_positive * n_negative))


# --- Determinism and shape -------------------------------------------------------------------------


def test_same_seed_gives_the_same_rows_and_another_seed_other_rows() -> None:
    spec = ProvinceSpec(students=400, seed=11)
    first = list(generate_values(spec))
    assert first == list(generate_values(ProvinceSpec(students=400, seed=11)))
    assert first != list(generate_values(ProvinceSpec(students=400, seed=12)))


def test_generate_and_generate_values_are_the_same_stream() -> None:
    spec = ProvinceSpec(students=300, seed=5)
    assert [(row.kind, tuple(row.row.values())) for row in generate(spec)] == list(generate_values(spec))


def test_every_row_has_exactly_its_header(province: Province) -> None:
    assert set(KINDS) == (set(COLUMNS) - NOT_GENERATED) | {"truth"}
    assert HEADERS["truth"] == TRUTH_COLUMNS
    seen: Counter[str] = Counter()
    for row in province.rows:
        assert tuple(row.row) == HEADERS[row.kind]
        assert all(isinstance(value, str) for value in row.row.values())
        seen[row.kind] += 1
    assert set(seen) == set(KINDS)
    assert dict(seen) == province.stats.rows


def test_file_order_schools_then_each_school_roster_register_and_years(province: Province) -> None:
    kinds = [row.kind for row in province.rows]
    assert kinds[: province.stats.schools] == ["schools"] * province.stats.schools
    for school_id, rows in itertools.groupby(province.rows[province.stats.schools :], key=lambda r: r.row["school_id"]):
        block = list(rows)
        assert school_id in {row["school_id"] for row in province.of("schools")}
        assert block[0].kind == "roster"
        first_records = next(i for i, row in enumerate(block) if row.kind == "records")
        assert all(row.kind == "roster" for row in block[:first_records])
        assert block[first_records].row["action"] == "register"
        assert block[-1].kind == "truth"


def test_one_pupil_is_a_province() -> None:
    stats = GeneratorStats()
    rows = list(generate(ProvinceSpec(students=1), stats))
    schools = [row.row for row in rows if row.kind == "schools"]
    assert len(schools) == 1
    assert schools[0]["enrollment"] == "1"
    assert sum(row.kind == "roster" for row in rows) == stats.students >= 1


@pytest.mark.parametrize(
    "changes",
    [
        {"students": 0},
        {"school_years": (2022, 2024)},
        {"school_years": ()},
        {"bad_record_rate": 1.5},
        {"counties": 0},
        {"survey_from_grade": 10},
    ],
)
def test_spec_rejects_impossible_values(changes: dict[str, object]) -> None:
    arguments: dict[str, object] = {"students": 100} | changes
    with pytest.raises(ValueError):
        ProvinceSpec(**arguments)  # type: ignore[arg-type]


# --- Identities and structure ---------------------------------------------------------------------


def test_student_numbers_are_synthetic_and_unique(province: Province) -> None:
    numbers = [row["student_number"] for row in province.of("roster")]
    assert len(numbers) == len(set(numbers)) == province.stats.students
    for number in numbers:
        # "G" + 18 digits, behind the unassigned province code 99.
        assert len(number) == 19
        assert number.startswith("G99")
        assert number[1:].isdigit()


def test_ages_fit_grades(province: Province) -> None:
    for row in province.of("roster"):
        grade = int(row["grade"])
        assert 1 <= grade <= 9
        age = age_in_months(date.fromisoformat(row["birth_date"]), date.fromisoformat(row["enrolled_on"])) / 12
        # Six by 31 August before grade 1, a few a year older.
        assert 5.0 <= age - grade <= 7.0 + 1e-9
        assert 6.0 <= age < 16.0


def test_schools_look_like_a_province() -> None:
    stream = generate(ProvinceSpec(students=150_000, counties=1))
    rows = [row.row for row in itertools.takewhile(lambda r: r.kind == "schools", stream)]
    assert {row["urban_rural"] for row in rows} == {"urban", "rural"}
    assert {row["stage"] for row in rows} == {"primary", "junior", "nine_year"}
    assert sum(int(row["enrollment"]) for row in rows) == 150_000

    def boarding_share(setting: str) -> float:
        chosen = [row for row in rows if row["urban_rural"] == setting]
        return sum(row["boarding"] == "1" for row in chosen) / len(chosen)

    assert boarding_share("rural") > boarding_share("urban")
    assert any(int(row["enrollment"]) >= 600 for row in rows)
    needing_doctor = [row for row in rows if int(row["enrollment"]) >= 600 or row["boarding"] == "1"]
    assert any(row["school_doctors"] == "0" for row in needing_doctor)
    assert any(int(row["school_doctors"]) >= 1 for row in needing_doctor)
    for row in rows:
        parse_school_row(row)


def test_special_groups(province: Province) -> None:
    setting = {row["school_id"]: row["urban_rural"] for row in province.of("schools")}
    roster = province.of("roster")
    disability = sum(row["disability"] == "1" for row in roster) / len(roster)
    assert 0.005 <= disability <= 0.03

    def left_behind(where: str) -> float:
        chosen = [row for row in roster if setting[row["school_id"]] == where]
        return sum(row["left_behind"] == "1" for row in chosen) / len(chosen)

    assert left_behind("rural") > left_behind("urban") + 0.05


# --- Epidemiology --------------------------------------------------------------------------------


def test_screening_myopia_by_stage_matches_the_national_baselines(
    province: Province, grades: dict[str, tuple[int, int]]
) -> None:
    by_stage: dict[str, list[bool]] = defaultdict(list)
    by_grade: dict[int, list[bool]] = defaultdict(list)
    age_six: list[bool] = []
    for row, myopic in vision_results(province):
        measured = date.fromisoformat(row["measured_on"])
        grade = grade_in(grades, row["student_number"], school_year(measured))
        by_grade[grade].append(myopic)
        by_stage["primary" if grade <= 6 else "junior"].append(myopic)
        if 6 <= age_in_months(date.fromisoformat(row["birth_date"]), measured) / 12 < 7:
            age_six.append(myopic)

    def share(values: list[bool]) -> float:
        return 100 * sum(values) / len(values)

    # epi_baselines.csv: primary 36.0 (2018) .. 36.7 (2022); junior 71.6 .. 71.4; age 6 14.5 / 14.3.
    assert share(by_stage["primary"]) == pytest.approx(36.0, abs=5)
    assert share(by_stage["junior"]) == pytest.approx(71.5, abs=7)
    assert share(age_six) == pytest.approx(14.5, abs=4)
    # Grade 1 15.7 / 12.9, grade 6 59.0 / 59.6: rising through school.
    assert share(by_grade[1]) == pytest.approx(14.5, abs=4)
    assert share(by_grade[6]) == pytest.approx(59.0, abs=7)
    assert [share(by_grade[g]) for g in range(1, 7)] == sorted(share(by_grade[g]) for g in range(1, 7))


def test_overweight_and_obesity_by_wst586_match_the_baselines(province: Province) -> None:
    classes = Counter(category for _, category in growth_results(province))
    total = sum(classes.values())
    # epi_baselines.csv, ages 6-17: overweight 11.1 %, obesity 7.9 % (CNSSCH 2019 7-17: 14.1 / 10.5).
    assert 100 * classes["overweight"] / total == pytest.approx(11.1, abs=4)
    assert 100 * classes["obesity"] / total == pytest.approx(7.9, abs=4)
    by_sex: dict[str, Counter[str]] = defaultdict(Counter)
    for row, category in growth_results(province):
        by_sex[row["sex"]][category] += 1

    def obesity(sex: str) -> float:
        return by_sex[sex]["obesity"] / sum(by_sex[sex].values())

    assert obesity("male") > 1.2 * obesity("female")


def test_heights_show_digit_preference(province: Province) -> None:
    decimals = Counter(row["height_cm"].rsplit(".", 1)[1] for row in province.of("bmi") if "." in row["height_cm"])
    total = sum(decimals.values())
    # Screeners who round to .0 or .5 push those digits above the uniform 10 % each.
    assert (decimals["0"] + decimals["5"]) / total > 0.3


def test_survey_screens(province: Province) -> None:
    phq = [values for row in province.of("survey") if row["instrument"] == "phq-a" if (values := answers(row))]
    assert {len(values) for values in phq} == {9, 13}
    positive = sum(PHQ.score(values).positive_screen is True for values in phq) / len(phq)
    self_harm = sum(values[8] > 0 for values in phq) / len(phq)
    # Baselines: depressive symptoms 20-25 %; item 9 above 0 in about 2-4 % of answers.
    assert 0.15 <= positive <= 0.30
    assert 0.02 <= self_harm <= 0.045
    gad = [values for row in province.of("survey") if row["instrument"] == "gad-7" if (values := answers(row))]
    assert 0.05 <= sum(GAD.score(values).positive_screen is True for values in gad) / len(gad) <= 0.2


def test_self_harm_share_is_configurable() -> None:
    spec = ProvinceSpec(students=3000, self_harm_share=0.08, bad_record_rate=0.0)
    phq = [
        values[7].split(";")
        for kind, values in generate_values(spec)
        if kind == "survey" and values[5] == "phq-a"
    ]
    assert sum(items[8] != "0" for items in phq) / len(phq) == pytest.approx(0.08, abs=0.02)


def test_health_literacy_rises_by_year(province: Province) -> None:
    by_year: dict[int, list[bool]] = defaultdict(list)
    for row in province.of("survey"):
        if row["instrument"] == "hl-student" and (values := answers(row)):
            by_year[school_year(date.fromisoformat(row["answered_on"]))].append(HL.score(values).literate is True)
    shares = [sum(by_year[year]) / len(by_year[year]) for year in province.spec.school_years]
    # National residents 2022-2024: 27.8, 29.7, 31.9 %; central region 26.7, 28.9, 31.5 %.
    assert all(0.15 <= share <= 0.45 for share in shares)
    assert shares[-1] > shares[0] + 0.02


# --- Bad records ---------------------------------------------------------------------------------


def test_bad_record_rate_is_close_to_the_spec(province: Province) -> None:
    stats = province.stats
    expected = province.spec.bad_record_rate * stats.measurement_rows
    assert abs(stats.bad_total - expected) < 4 * expected**0.5
    assert set(stats.bad_records) == {"vision", "bmi", "survey"}
    assert sum(stats.defects.values()) == stats.bad_total


def test_bad_records_replace_good_ones_and_change_nothing_else() -> None:
    stats = GeneratorStats()
    clean = list(generate_values(ProvinceSpec(students=400, seed=4, bad_record_rate=0.0)))
    dirty = list(generate_values(ProvinceSpec(students=400, seed=4, bad_record_rate=0.05), stats))
    assert len(clean) == len(dirty)
    assert sum(a != b for a, b in zip(clean, dirty, strict=True)) == stats.bad_total > 0


def test_the_importer_rejects_exactly_the_bad_records() -> None:
    stats = GeneratorStats()
    spec = ProvinceSpec(students=250, seed=3, bad_record_rate=0.03)
    now = datetime(2027, 1, 1, tzinfo=UTC)
    rejected: Counter[str] = Counter()
    for row in generate(spec, stats):
        if row.kind == "schools":
            parse_school_row(row.row)
        elif row.kind == "roster":
            parse_roster_row(row.row, secret=b"test-secret")
        elif row.kind != "truth":
            try:
                row_to_event(row.kind, row.row, secret=b"test-secret", submitted_by="synthetic", now=now)  # type: ignore[arg-type]
            except RowRejected:
                rejected[row.kind] += 1
    assert stats.bad_total > 10
    assert dict(rejected) == {kind: count for kind, count in stats.bad_records.items() if count}


# --- Truth ---------------------------------------------------------------------------------------


def next_outcomes(province: Province) -> dict[str, dict[tuple[str, int], bool]]:
    """Outcome of each pupil in each school year (the autumn term for questionnaires)."""
    outcomes: dict[str, dict[tuple[str, int], bool]] = defaultdict(dict)
    for row, myopic in vision_results(province):
        outcomes["myopia"][row["student_number"], school_year(date.fromisoformat(row["measured_on"]))] = myopic
    for row, category in growth_results(province):
        key = row["student_number"], school_year(date.fromisoformat(row["measured_on"]))
        outcomes["overweight"][key] = category in {"overweight", "obesity"}
    for row in province.of("survey"):
        values = answers(row)
        answered = date.fromisoformat(row["answered_on"])
        if values is None:
            continue
        key = row["student_number"], school_year(answered)
        if row["instrument"] == "phq-a" and answered.month >= 9:
            outcomes["depression"][key] = PHQ.score(values).positive_screen is True
            outcomes["self_harm"][key] = values[8] > 0
        elif row["instrument"] == "gad-7" and answered.month >= 9:
            outcomes["anxiety"][key] = GAD.score(values).positive_screen is True
        elif row["instrument"] == "hl-student":
            outcomes["literate"][key] = HL.score(values).literate is True
    return outcomes


TRUTH_OUTCOMES = {
    "p_myopia_onset_next_year": "myopia",
    "p_overweight_next_year": "overweight",
    "p_depression_positive_next_term": "depression",
    "p_anxiety_positive_next_term": "anxiety",
    "p_self_harm_next_term": "self_harm",
    "p_health_literate_next_year": "literate",
}


def test_truth_probabilities_are_probabilities(province: Province) -> None:
    truth = province.of("truth")
    assert truth
    for row in truth:
        for column in TRUTH_OUTCOMES:
            if row[column]:
                assert 0.0 <= float(row[column]) <= 1.0
    # Onset is only at risk for pupils not yet myopic.
    assert any(row["p_myopia_onset_next_year"] == "" for row in truth)


@pytest.mark.parametrize("column", list(TRUTH_OUTCOMES))
def test_next_outcomes_follow_the_true_probabilities(province: Province, column: str) -> None:
    outcomes = next_outcomes(province)[TRUTH_OUTCOMES[column]]
    scores: list[float] = []
    observed: list[bool] = []
    for row in province.of("truth"):
        outcome = outcomes.get((row["student_number"], int(row["school_year"]) + 1))
        if row[column] and outcome is not None:
            scores.append(float(row[column]))
            observed.append(outcome)
    assert len(scores) > 500
    assert auc(scores, observed) > 0.6
    # Outcomes are drawn from these very probabilities, so they agree on average too.
    assert np.mean(scores) == pytest.approx(np.mean(observed), abs=0.025)


def test_rank_auc_agrees_with_scikit_learn() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    scores = np.round(rng.random(400), 1)
    outcomes = rng.random(400) < scores
    assert auc(scores.tolist(), outcomes.tolist()) == pytest.approx(roc_auc_score(outcomes, scores))


# --- Memory and files ------------------------------------------------------------------------------


def peak_bytes(students: int) -> int:
    spec = ProvinceSpec(students=students, seed=99)
    tracemalloc.start()
    try:
        for _, rows in generate_blocks(spec):
            for _ in rows:
                pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_stays_bounded_for_20k_students() -> None:
    assert peak_bytes(20_000) < 50 * 2**20


@pytest.mark.slow
def test_memory_does_not_grow_with_the_province() -> None:
    # The peak is one school's arrays and one school-year's rows. A larger province only adds
    # schools, although it is likelier to hold one near the 6,000-pupil cap.
    # A four times larger province stays under the same fixed bound as the small one (it measured
    # 5 MB for 20k and 11 MB for 200k pupils; whole-province state would be hundreds of MB).
    assert peak_bytes(20_000) < 50 * 2**20
    assert peak_bytes(80_000) < 50 * 2**20


def test_write_province_writes_one_csv_per_kind(tmp_path: Path) -> None:
    spec = ProvinceSpec(students=300, seed=8)
    stats = write_province(spec, tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(f"{kind}.csv" for kind in KINDS)
    expected: dict[str, list[tuple[str, ...]]] = defaultdict(list)
    for kind, values in generate_values(spec):
        expected[kind].append(values)
    for kind in KINDS:
        text = (tmp_path / f"{kind}.csv").read_text(encoding="utf-8")
        reader = csv.reader(io.StringIO(text))
        assert tuple(next(reader)) == HEADERS[kind]
        assert [tuple(row) for row in reader] == expected[kind]
        assert stats.rows[kind] == len(expected[kind])
        # Byte for byte what csv.writer writes.
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(HEADERS[kind])
        writer.writerows(expected[kind])
        assert text == buffer.getvalue()


def test_parallel_writing_gives_the_same_files(tmp_path: Path) -> None:
    spec = ProvinceSpec(students=600, seed=13, counties=3)
    serial = write_province(spec, tmp_path / "serial")
    parallel = write_province(spec, tmp_path / "parallel", workers=2)
    assert parallel == serial
    for kind in KINDS:
        name = f"{kind}.csv"
        assert (tmp_path / "parallel" / name).read_bytes() == (tmp_path / "serial" / name).read_bytes()
    assert sorted(path.name for path in (tmp_path / "parallel").iterdir()) == sorted(f"{kind}.csv" for kind in KINDS)


def test_write_province_quotes_cells_that_need_it(tmp_path: Path) -> None:
    from services.devtools.synthetic_files import _write_rows

    buffer = io.StringIO()
    _write_rows(buffer, 2, [("a,b", 'say "hi"'), ("plain", "")])
    assert list(csv.reader(io.StringIO(buffer.getvalue()))) == [["a,b", 'say "hi"'], ["plain", ""]]
