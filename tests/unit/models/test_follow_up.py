"""Which screening results need follow-up, and when to re-check."""

from __future__ import annotations

from datetime import date

from models.follow_up import default_next_check, growth_findings, vision_findings


def test_vision_findings() -> None:
    assert vision_findings(True, "moderate") == ["screening_myopia", "visual_impairment"]
    assert vision_findings(False, "normal") == []
    assert vision_findings(None, "mild") == ["visual_impairment"]
    assert vision_findings(None, "not_applicable") == []


def test_growth_findings() -> None:
    assert growth_findings("obesity", "normal", "normal") == ["obesity"]
    assert growth_findings("normal", "moderate_severe", "stunting") == ["wasting", "stunting"]
    assert growth_findings("not_applicable", "not_applicable", "not_applicable") == []


def test_next_check_is_the_earliest_any_finding_asks_for() -> None:
    measured = date(2025, 10, 1)
    assert default_next_check(["screening_myopia"], measured) == date(2025, 12, 31)
    assert default_next_check(["overweight", "stunting"], measured) == date(2025, 10, 31)


def test_fitness_findings() -> None:
    from models.follow_up import fitness_findings

    assert fitness_findings("fail", ["pull_ups"]) == ["fitness_fail", "fitness_item_fail"]
    assert fitness_findings("pass", ["run_1000m"]) == ["fitness_item_fail"]
    assert fitness_findings(None, []) == []  # incomplete, nothing failed
    assert fitness_findings("good", None) == []
    assert default_next_check(["fitness_fail"], date(2025, 10, 1)) == date(2025, 10, 31)
