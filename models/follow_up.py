"""Which screening results need action, the steps of following them up, and the next check.

A screening result needs follow-up when it shows screening myopia or visual impairment (vision)
or overweight, obesity, wasting or stunting (growth, where classified), or, for the PE teacher and
the school doctor together, a physical-fitness test rated fail or with a failed item (not an
urgent alert: the standard allows one retest in the school year, so the re-check is a month on). The school doctor tells
the parents (a letter), may refer the student, re-checks, and closes the case; each step may set
the date of the next check. Default intervals: vision and weight status re-checked after three
months (the myopia prevention guidance for children asks for a review every 3-6 months), wasting
and stunting after one month.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from types import MappingProxyType
from typing import Final, Literal, get_args

__all__ = [
    "FINDINGS",
    "STATES",
    "Finding",
    "State",
    "default_next_check",
    "fitness_findings",
    "growth_findings",
    "vision_findings",
]

Finding = Literal["screening_myopia", "visual_impairment", "overweight", "obesity", "wasting", "stunting",
                  "fitness_fail", "fitness_item_fail"]
State = Literal["to_notify", "parents_notified", "referred", "rechecked", "closed"]
FINDINGS: Final[tuple[Finding, ...]] = get_args(Finding)
STATES: Final[tuple[State, ...]] = get_args(State)

_RECHECK_AFTER_DAYS: Final[Mapping[Finding, int]] = MappingProxyType({
    "screening_myopia": 91, "visual_impairment": 91, "overweight": 91, "obesity": 91, "wasting": 30,
    "stunting": 30, "fitness_fail": 30, "fitness_item_fail": 30,
})


def vision_findings(screening_myopia: bool | None, impairment: str | None) -> list[Finding]:
    """The findings of one vision screening (worse-eye impairment grade, screening myopia)."""
    found: list[Finding] = []
    if screening_myopia:
        found.append("screening_myopia")
    if impairment in ("mild", "moderate", "severe"):
        found.append("visual_impairment")
    return found


def growth_findings(wst586: str | None, wasting: str | None, stunting: str | None) -> list[Finding]:
    """The findings of one height/weight screening (WS/T 586-2018, WS/T 456-2014)."""
    found: list[Finding] = []
    if wst586 in ("overweight", "obesity"):
        found.append(wst586)  # type: ignore[arg-type]
    if wasting in ("mild", "moderate_severe"):
        found.append("wasting")
    if stunting == "stunting":
        found.append("stunting")
    return found


def fitness_findings(band: str | None, failed_items: Sequence[str] | None) -> list[Finding]:
    """The findings of one fitness test: a total rated fail, or any item scoring below 60."""
    found: list[Finding] = []
    if band == "fail":
        found.append("fitness_fail")
    if failed_items:
        found.append("fitness_item_fail")
    return found


def default_next_check(findings: Sequence[Finding], measured_on: date) -> date:
    """The earliest re-check any of ``findings`` asks for, counted from the screening."""
    days = min((_RECHECK_AFTER_DAYS[finding] for finding in findings), default=91)
    return measured_on + timedelta(days=days)
