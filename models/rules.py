"""Early-intervention alert rules: versioned, item-level, pure.

A rule reads one classified screening and says whether it needs someone's attention, how urgently
and which team acts on it. Rules read single items where the standard does: any answer above 0 on
PHQ item 9 ("thoughts that you would be better off dead, or of hurting yourself") is an urgent
alert whatever the total, as the PHQ-9/PHQ-A instructions ask for same-day assessment; so are the
PHQ-A supplementary items 12 and 13 (suicidal ideation in the past month, a lifetime attempt).

Each rule has an id and a version. A change of a rule's logic is a new version, so an alert can
always be traced to the exact rule that raised it (the alert row stores both).

One open alert per student and concern: rules name a *concern*, and the alert store merges a
repeat screening into the open alert of the same concern instead of opening another one.

Screenings older than `MAX_OBSERVATION_AGE_DAYS` at submission (a bulk import of past years)
raise no alert: a three-year-old answer is history for the models, not an emergency now.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Final, Literal, TypeAlias, get_args
from uuid import UUID

from pydantic import TypeAdapter, computed_field

from models.identity import event_id_for
from models.pipeline import ClassifiedGrowth, ClassifiedSurvey, ClassifiedVision, ProcessedMessages

__all__ = [
    "CONCERNS",
    "MAX_OBSERVATION_AGE_DAYS",
    "PRIORITIES",
    "RULES",
    "RULESET_VERSION",
    "TEAMS",
    "AlertCandidate",
    "Concern",
    "InvalidAlertMessage",
    "Priority",
    "Rule",
    "Team",
    "decode_alert_message",
    "encode_alert_message",
    "evaluate_batch",
    "evaluate_growth",
    "evaluate_survey",
    "evaluate_vision",
    "priority_rank",
]

RULESET_VERSION: Final = "alert-rules-1"
MAX_OBSERVATION_AGE_DAYS: Final = 180

Priority: TypeAlias = Literal["urgent", "high", "medium", "low"]
PRIORITIES: Final[tuple[Priority, ...]] = get_args(Priority)
Team: TypeAlias = Literal["counselling", "school_doctor"]
TEAMS: Final[tuple[Team, ...]] = get_args(Team)
Concern: TypeAlias = Literal["self_harm", "depression", "anxiety", "severe_thinness", "obesity", "high_myopia"]
CONCERNS: Final[tuple[Concern, ...]] = get_args(Concern)


def priority_rank(priority: Priority) -> int:
    """0 for urgent, rising as the priority falls (sorts a queue most urgent first)."""
    return PRIORITIES.index(priority)


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """One alert rule: what it reads, the concern it raises, its priority and the acting team."""

    id: str
    version: int
    concern: Concern
    priority: Priority
    team: Team
    description: str
    reference: str


SELF_HARM_ITEM = Rule(
    id="phq-item9-self-harm", version=1, concern="self_harm", priority="urgent", team="counselling",
    description="PHQ-9/PHQ-A item 9 answered above 0 (thoughts of death or self-harm), whatever the total",
    reference="PHQ-9 (Kroenke, Spitzer & Williams 2001); PHQ-A (Johnson et al. 2002)",
)
SUICIDALITY_SUPPLEMENT = Rule(
    id="phqa-suicidality", version=1, concern="self_harm", priority="urgent", team="counselling",
    description="PHQ-A item 12 (serious thoughts of ending one's life, past month) or 13 (attempt) answered yes",
    reference="PHQ-A (Johnson et al. 2002)",
)
PHQ_SEVERE = Rule(
    id="phq-severe", version=1, concern="depression", priority="high", team="counselling",
    description="PHQ total 20-27 (severe depressive symptoms)",
    reference="PHQ-9 bands (Kroenke et al. 2001)",
)
PHQ_MODERATELY_SEVERE = Rule(
    id="phq-moderately-severe", version=1, concern="depression", priority="medium", team="counselling",
    description="PHQ total 15-19 (moderately severe depressive symptoms)",
    reference="PHQ-9 bands (Kroenke et al. 2001)",
)
GAD_SEVERE = Rule(
    id="gad-severe", version=1, concern="anxiety", priority="medium", team="counselling",
    description="GAD-7 total 15-21 (severe anxiety symptoms)",
    reference="GAD-7 bands (Spitzer et al. 2006)",
)
SEVERE_THINNESS = Rule(
    id="who-severe-thinness", version=1, concern="severe_thinness", priority="high", team="school_doctor",
    description="BMI-for-age below -3 SD of the WHO 2007 reference",
    reference="WHO 2007 growth reference for 5-19 years",
)
OBESITY = Rule(
    id="wst586-obesity", version=1, concern="obesity", priority="low", team="school_doctor",
    description="BMI at or above the WS/T 586-2018 obesity cut-off for sex and age",
    reference="WS/T 586-2018",
)
HIGH_MYOPIA = Rule(
    id="high-myopia", version=1, concern="high_myopia", priority="medium", team="school_doctor",
    description="spherical equivalent at or below -6.00 D in either eye",
    reference="Myopia grading by spherical equivalent (high: SE <= -6.00 D)",
)

RULES: Final[tuple[Rule, ...]] = (
    SELF_HARM_ITEM, SUICIDALITY_SUPPLEMENT, PHQ_SEVERE, PHQ_MODERATELY_SEVERE, GAD_SEVERE,
    SEVERE_THINNESS, OBESITY, HIGH_MYOPIA,
)
_RULE_BY_KEY: Final[Mapping[tuple[str, int], Rule]] = {(rule.id, rule.version): rule for rule in RULES}


# The `schema` member of an alert on the ``intervention-alerts`` topic: written and checked here.
_ALERT_SCHEMA: Final[dict[str, str | int]] = {"family": "intervention-alert", "version": 1}


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertCandidate:
    """What a rule raised for one screening: the message on the ``intervention-alerts`` topic.

    It carries the pseudonymous ``student_key`` and codes only, never a name. ``evidence`` holds
    the few values the rule read (an item answer, a total, a z-score), for the person who acts.
    """

    alert_event_id: UUID
    source_event_id: UUID
    source_family: str
    student_key: str
    school_id: str
    rule_id: str
    rule_version: int
    concern: Concern
    priority: Priority
    team: Team
    observed_on: date
    submitted_at: datetime
    evidence: Mapping[str, str | int | float | bool | None] = field(default_factory=dict)

    @computed_field(alias="schema")  # type: ignore[prop-decorator]  # pydantic reads the property
    @property
    def wire_schema(self) -> dict[str, str | int]:
        """The ``schema`` member each alert carries on the ``intervention-alerts`` topic."""
        return dict(_ALERT_SCHEMA)


def _candidate(rule: Rule, *, event_id: UUID, family: str, student_key: str, school_id: str,
               observed_on: date, submitted_at: datetime,
               evidence: Mapping[str, str | int | float | bool | None]) -> AlertCandidate:
    return AlertCandidate(
        alert_event_id=event_id_for("alert", str(event_id), rule.id, str(rule.version)), source_event_id=event_id,
        source_family=family, student_key=student_key, school_id=school_id, rule_id=rule.id,
        rule_version=rule.version, concern=rule.concern, priority=rule.priority, team=rule.team,
        observed_on=observed_on, submitted_at=submitted_at, evidence=dict(evidence),
    )


def _too_old(observed_on: date, submitted_at: datetime) -> bool:
    return observed_on < submitted_at.date() - timedelta(days=MAX_OBSERVATION_AGE_DAYS)


def evaluate_survey(item: ClassifiedSurvey) -> list[AlertCandidate]:
    """Alerts raised by one scored questionnaire (PHQ-9, PHQ-A, GAD-7); none for other instruments."""
    event, result = item.event, item.result
    if _too_old(event.answered_on, event.occurred_at):
        return []
    raised: list[tuple[Rule, dict[str, str | int | float | bool | None]]] = []
    base: dict[str, str | int | float | bool | None] = {
        "instrument": event.instrument, "instrument_version": event.instrument_version,
        "total": result.total, "band": result.band,
    }
    if event.instrument in ("phq-9", "phq-a"):
        # Read the item itself, not only the scorer's flag: the rule must hold whatever the total.
        if len(event.answers) >= 9 and event.answers[8] > 0:
            raised.append((SELF_HARM_ITEM, {**base, "item": 9, "answer": event.answers[8]}))
        elif event.instrument == "phq-a" and len(event.answers) >= 13 and (event.answers[11] or event.answers[12]):
            raised.append((SUICIDALITY_SUPPLEMENT, {**base, "item12": event.answers[11], "item13": event.answers[12]}))
        if result.band == "severe":
            raised.append((PHQ_SEVERE, base))
        elif result.band == "moderately_severe":
            raised.append((PHQ_MODERATELY_SEVERE, base))
    elif event.instrument == "gad-7" and result.band == "severe":
        raised.append((GAD_SEVERE, base))
    return [
        _candidate(rule, event_id=event.event_id, family="psych-survey", student_key=event.student_key,
                   school_id=event.school_id, observed_on=event.answered_on, submitted_at=event.occurred_at,
                   evidence=evidence)
        for rule, evidence in raised
    ]


def evaluate_growth(item: ClassifiedGrowth) -> list[AlertCandidate]:
    """Alerts raised by one height/weight screening: severe thinness, obesity."""
    result = item.result
    severe_thinness, obesity = result.who_category == "severe_thinness", result.wst586 == "obesity"
    if not (severe_thinness or obesity):  # most screenings: decided before anything is built
        return []
    event = item.event
    if _too_old(event.measured_on, event.occurred_at):
        return []
    rules = [SEVERE_THINNESS] if severe_thinness else []
    if obesity:
        rules.append(OBESITY)
    evidence: dict[str, str | int | float | bool | None] = {
        "bmi": result.bmi_display,
        "bmi_for_age_z": None if result.bmi_for_age_z is None else round(result.bmi_for_age_z, 2),
        "who_category": result.who_category, "wst586": result.wst586,
    }
    return [
        _candidate(rule, event_id=event.event_id, family="bmi-screening", student_key=event.student_key,
                   school_id=event.school_id, observed_on=event.measured_on, submitted_at=event.occurred_at,
                   evidence=evidence)
        for rule in rules
    ]


def evaluate_vision(item: ClassifiedVision) -> list[AlertCandidate]:
    """Alerts raised by one vision screening: high myopia in either eye."""
    event, result = item.event, item.result
    if _too_old(event.measured_on, event.occurred_at):
        return []
    if result.myopia_grade_right != "high" and result.myopia_grade_left != "high":
        return []
    evidence: dict[str, str | int | float | bool | None] = {
        "se_right": event.se_right, "se_left": event.se_left,
        "ucva_right": event.ucva_right, "ucva_left": event.ucva_left,
    }
    return [_candidate(HIGH_MYOPIA, event_id=event.event_id, family="vision-screening",
                       student_key=event.student_key, school_id=event.school_id, observed_on=event.measured_on,
                       submitted_at=event.occurred_at, evidence=evidence)]


def evaluate_batch(batch: ProcessedMessages) -> list[AlertCandidate]:
    """Every alert a micro-batch of classified events raises, surveys first (the urgent ones)."""
    candidates: list[AlertCandidate] = []
    for survey in batch.surveys:
        candidates.extend(evaluate_survey(survey))
    for growth in batch.growth:
        candidates.extend(evaluate_growth(growth))
    for vision in batch.vision:
        candidates.extend(evaluate_vision(vision))
    return candidates


class InvalidAlertMessage(ValueError):
    """An ``intervention-alerts`` message that is not an alert of a known rule."""


ALERT_BATCH_FAMILY: Final = "intervention-alert-batch"
_ALERT_BATCH_SCHEMA: Final[dict[str, str | int]] = {"family": ALERT_BATCH_FAMILY, "version": 1}


@dataclass(frozen=True, slots=True)
class _AlertBatch:
    alerts: tuple[AlertCandidate, ...]  # a tuple, not a Sequence: pydantic serialises it natively

    @computed_field(alias="schema")  # type: ignore[prop-decorator]  # pydantic reads the property
    @property
    def wire_schema(self) -> dict[str, str | int]:
        return dict(_ALERT_BATCH_SCHEMA)


# pydantic's serializer writes the dataclasses (UUIDs, dates, times and all) in one native pass:
# four times faster than building dicts for json.dumps, and the worker writes one per alert.
_ALERT_JSON: Final[TypeAdapter[AlertCandidate]] = TypeAdapter(AlertCandidate)
_ALERT_BATCH_JSON: Final[TypeAdapter[_AlertBatch]] = TypeAdapter(_AlertBatch)


def encode_alert_message(candidate: AlertCandidate) -> bytes:
    """Compact JSON of one alert for the ``intervention-alerts`` topic."""
    return _ALERT_JSON.dump_json(candidate, by_alias=True)


def encode_alert_batch(candidates: Sequence[AlertCandidate]) -> bytes:
    """Several alerts of one school in one ``intervention-alerts`` message (the worker's batches).

    One message per school and micro-batch instead of one per alert: producing is then a small
    part of the worker's time even when a screening day raises thousands of follow-ups.
    """
    return _ALERT_BATCH_JSON.dump_json(_AlertBatch(alerts=tuple(candidates)), by_alias=True)


def decode_alert_message(payload: bytes | str) -> AlertCandidate:
    """Parse a single-alert ``intervention-alerts`` message; the rule must be known at that version."""
    try:
        data = json.loads(payload)
    except ValueError:
        raise InvalidAlertMessage("not JSON") from None
    return _candidate_from(data)


def decode_alert_messages(payload: bytes | str) -> tuple[list[AlertCandidate], list[InvalidAlertMessage]]:
    """Parse a single alert or an alert batch; invalid members are returned, not raised."""
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the interpreter's stack
        return [], [InvalidAlertMessage("not JSON")]
    if isinstance(data, dict) and data.get("schema") == _ALERT_BATCH_SCHEMA:
        members = data.get("alerts")
        if not isinstance(members, list):
            return [], [InvalidAlertMessage("alert batch without an alerts list")]
    else:
        members = [data]
    good: list[AlertCandidate] = []
    bad: list[InvalidAlertMessage] = []
    for member in members:
        try:
            good.append(_candidate_from(member))
        except InvalidAlertMessage as error:
            bad.append(error)
    return good, bad


def _candidate_from(data: Any) -> AlertCandidate:
    try:
        if data["schema"] != _ALERT_SCHEMA:
            raise InvalidAlertMessage("not an intervention-alert v1 message")
        rule = _RULE_BY_KEY.get((data["rule_id"], data["rule_version"]))
        if rule is None:
            raise InvalidAlertMessage("unknown rule or rule version")
        evidence = data.get("evidence") or {}
        if not isinstance(evidence, dict):
            raise InvalidAlertMessage("evidence is not an object")
        student_key = str(data["student_key"])
        if len(student_key) != 64 or any(c not in "0123456789abcdef" for c in student_key):
            raise InvalidAlertMessage("student_key is not 64 lowercase hex digits")
        submitted_at = datetime.fromisoformat(data["submitted_at"])
        if submitted_at.tzinfo is None:
            raise InvalidAlertMessage("submitted_at has no time zone")
        return AlertCandidate(
            alert_event_id=UUID(data["alert_event_id"]), source_event_id=UUID(data["source_event_id"]),
            source_family=str(data["source_family"]), student_key=student_key,
            school_id=str(data["school_id"]), rule_id=rule.id, rule_version=rule.version,
            # Concern, priority and team come from the rule, not from the message.
            concern=rule.concern, priority=rule.priority, team=rule.team,
            observed_on=date.fromisoformat(data["observed_on"]), submitted_at=submitted_at,
            evidence=evidence,
        )
    except InvalidAlertMessage:
        raise
    except (ValueError, KeyError, TypeError) as error:
        raise InvalidAlertMessage(f"malformed alert message: {type(error).__name__}") from None


def rules_table() -> Iterable[dict[str, str | int]]:
    """The rule set as plain rows (for docs and the API)."""
    return [
        {"id": r.id, "version": r.version, "concern": r.concern, "priority": r.priority, "team": r.team,
         "description": r.description, "reference": r.reference}
        for r in RULES
    ]
