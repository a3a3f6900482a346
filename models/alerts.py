"""The alert queue's state machine, deadlines and escalation, as pure functions of an explicit `now`.

States::

    open ──acknowledge──► acknowledged ──start──► in_progress ──resolve(outcome)──► resolved
                              │                      │
                              └────────refer─────────┴──────────refer──────────────► referred

An alert must be acknowledged before it is resolved or referred: the acknowledgement is the
moment a named person took responsibility, and the deadlines measure exactly that. Each priority
has an acknowledgement deadline (urgent: within the hour). An open alert past its deadline
escalates one level (0: the acting team, 1: the school's lead, 2: the county); the next escalation
is due one deadline-length later, and level 2 is the last. `ack_deadline` itself never moves later,
so "acknowledged within the deadline" keeps its meaning after an escalation.

Every function here returns a new value or raises `TransitionRefused` with a stable code and a
reason that can be shown to the user as is. Nothing reads the clock: the caller passes `now`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Final, Literal, TypeAlias, get_args

from models.rules import AlertCandidate, Priority, priority_rank

__all__ = [
    "ACK_DEADLINES",
    "ACTIONS",
    "ESCALATION_LEVELS",
    "MAX_ESCALATION_LEVEL",
    "OPEN_STATES",
    "OPEN_STATES_IN_ORDER",
    "OPEN_STATES_SQL",
    "OUTCOMES",
    "STATES",
    "Action",
    "AlertState",
    "Outcome",
    "State",
    "Transition",
    "TransitionRefused",
    "ack_deadline",
    "apply_action",
    "escalate",
    "merge_repeat",
    "new_alert",
]

State: TypeAlias = Literal["open", "acknowledged", "in_progress", "resolved", "referred"]
STATES: Final[tuple[State, ...]] = get_args(State)
#: The states of an alert still on someone's queue, in queue order; the one home of that list
#: (SQL queries use `OPEN_STATES_SQL`, the API's default filter the tuple).
OPEN_STATES_IN_ORDER: Final[tuple[State, ...]] = ("open", "acknowledged", "in_progress")
OPEN_STATES: Final[frozenset[State]] = frozenset(OPEN_STATES_IN_ORDER)
#: The same states as an SQL list for `state IN (...)` (a literal, so partial indexes still apply).
OPEN_STATES_SQL: Final = ", ".join(f"'{state}'" for state in OPEN_STATES_IN_ORDER)
Action: TypeAlias = Literal["acknowledge", "start", "note", "resolve", "refer", "reassign"]
ACTIONS: Final[tuple[Action, ...]] = get_args(Action)
Outcome: TypeAlias = Literal[
    "concern_confirmed", "concern_not_confirmed", "support_in_school", "parents_informed", "student_left",
]
OUTCOMES: Final[tuple[Outcome, ...]] = get_args(Outcome)

#: Time to acknowledge, per priority. Urgent is the issue's "within the hour".
ACK_DEADLINES: Final[Mapping[Priority, timedelta]] = {
    "urgent": timedelta(hours=1),
    "high": timedelta(hours=24),
    "medium": timedelta(hours=72),
    "low": timedelta(days=7),
}
#: Who holds an alert at each escalation level.
ESCALATION_LEVELS: Final[tuple[str, ...]] = ("team", "school_lead", "county")
MAX_ESCALATION_LEVEL: Final = len(ESCALATION_LEVELS) - 1

_NOTE_MAX: Final = 2000


class TransitionRefused(ValueError):
    """A state change that conflicts with the alert's state or is malformed; `reason` says why."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertState:
    """The mutable part of an alert (what transitions change), plus its priority."""

    state: State
    priority: Priority
    escalation_level: int
    opened_at: datetime
    ack_deadline: datetime
    escalate_at: datetime
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    assigned_to: str | None = None
    closed_at: datetime | None = None
    outcome: Outcome | None = None
    referred_to: str | None = None
    occurrences: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Transition:
    """One recorded change: who did what, when, from which state to which."""

    action: str
    actor: str
    at: datetime
    from_state: State | None
    to_state: State
    from_level: int
    to_level: int
    note: str | None = None


def _aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")


def ack_deadline(priority: Priority, since: datetime) -> datetime:
    """When an alert of `priority` raised (or escalated) at `since` must be acknowledged."""
    _aware(since)
    return since + ACK_DEADLINES[priority]


def new_alert(candidate: AlertCandidate, *, now: datetime) -> tuple[AlertState, Transition]:
    """The state of a freshly opened alert and its opening transition (actor: the rule)."""
    _aware(now)
    deadline = ack_deadline(candidate.priority, now)
    state = AlertState(state="open", priority=candidate.priority, escalation_level=0, opened_at=now,
                       ack_deadline=deadline, escalate_at=deadline)
    return state, Transition(action="open", actor=f"rule:{candidate.rule_id}@{candidate.rule_version}", at=now,
                             from_state=None, to_state="open", from_level=0, to_level=0)


def merge_repeat(alert: AlertState, candidate: AlertCandidate, *, now: datetime) -> tuple[AlertState, Transition]:
    """A repeat screening of the same concern updates the open alert instead of opening another.

    The priority rises to the candidate's if that is more urgent, and an unacknowledged alert's
    deadline moves earlier if the new priority demands it (it never moves later).
    """
    _aware(now)
    if alert.state not in OPEN_STATES:
        raise TransitionRefused("closed", f"the alert is {alert.state}; a repeat opens a new alert")
    priority = alert.priority
    deadline, escalate_at = alert.ack_deadline, alert.escalate_at
    if priority_rank(candidate.priority) < priority_rank(alert.priority):
        priority = candidate.priority
        if alert.state == "open":
            deadline = min(deadline, ack_deadline(priority, now))
            escalate_at = min(escalate_at, ack_deadline(priority, now))
    updated = replace(alert, priority=priority, ack_deadline=deadline, escalate_at=escalate_at,
                      occurrences=alert.occurrences + 1)
    note = f"repeat screening; priority {alert.priority}" + (f" -> {priority}" if priority != alert.priority else "")
    return updated, Transition(action="repeat", actor=f"rule:{candidate.rule_id}@{candidate.rule_version}", at=now,
                               from_state=alert.state, to_state=alert.state, from_level=alert.escalation_level,
                               to_level=alert.escalation_level, note=note)


def escalate(alert: AlertState, *, now: datetime) -> tuple[AlertState, Transition] | None:
    """Escalate an open alert whose escalation is due (`escalate_at`); None if nothing is due.

    One level per call: a sweep that was down for a long time still records each level it passes.
    """
    _aware(now)
    if alert.state != "open" or alert.escalation_level >= MAX_ESCALATION_LEVEL or now < alert.escalate_at:
        return None
    level = alert.escalation_level + 1
    # The next step counts from the missed one, so a late sweep gives no extra time.
    updated = replace(alert, escalation_level=level, escalate_at=ack_deadline(alert.priority, alert.escalate_at))
    return updated, Transition(action="escalate", actor="system:escalation", at=now, from_state="open",
                               to_state="open", from_level=alert.escalation_level, to_level=level,
                               note=f"not acknowledged by {alert.escalate_at.isoformat()}; "
                                    f"escalated to {ESCALATION_LEVELS[level]}")


def _closed(alert: AlertState, action: str) -> TransitionRefused:
    return TransitionRefused("already_closed", f"cannot {action}: the alert is already {alert.state}"
                             + (f" (outcome {alert.outcome})" if alert.outcome else ""))


def apply_action(alert: AlertState, action: Action, *, actor: str, now: datetime, note: str | None = None,
                 outcome: str | None = None, referred_to: str | None = None,
                 assignee: str | None = None) -> tuple[AlertState, Transition]:
    """Apply a user's action; raises `TransitionRefused` if it conflicts with the alert's state."""
    _aware(now)
    if action not in ACTIONS:
        raise TransitionRefused("unknown_action", f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}")
    if note is not None and len(note) > _NOTE_MAX:
        raise TransitionRefused("note_too_long", f"a note has at most {_NOTE_MAX} characters, got {len(note)}")
    current = alert.state
    updated: AlertState
    if action == "acknowledge":
        if current != "open":
            if current in OPEN_STATES:
                raise TransitionRefused("already_acknowledged",
                                        f"cannot acknowledge: the alert is already {current}")
            raise _closed(alert, "acknowledge")
        updated = replace(alert, state="acknowledged", acknowledged_at=now, acknowledged_by=actor,
                          assigned_to=alert.assigned_to or actor)
    elif action == "start":
        if current == "open":
            raise TransitionRefused("not_acknowledged", "cannot start: acknowledge the alert first")
        if current == "in_progress":
            raise TransitionRefused("already_in_progress", "cannot start: the alert is already in progress")
        if current not in OPEN_STATES:
            raise _closed(alert, "start")
        updated = replace(alert, state="in_progress")
    elif action == "note":
        if not note or not note.strip():
            raise TransitionRefused("empty_note", "a note needs text")
        updated = alert
    elif action == "resolve":
        if current not in OPEN_STATES:
            raise _closed(alert, "resolve")
        if current == "open":
            raise TransitionRefused("not_acknowledged", "cannot resolve: acknowledge the alert first")
        if outcome not in OUTCOMES:
            raise TransitionRefused("outcome_required",
                                    f"resolving needs an outcome, one of {', '.join(OUTCOMES)}")
        chosen: Outcome = next(known for known in OUTCOMES if known == outcome)
        updated = replace(alert, state="resolved", closed_at=now, outcome=chosen)
    elif action == "refer":
        if current not in OPEN_STATES:
            raise _closed(alert, "refer")
        if current == "open":
            raise TransitionRefused("not_acknowledged", "cannot refer: acknowledge the alert first")
        if not referred_to or not referred_to.strip():
            raise TransitionRefused("referral_target_required", "referring needs referred_to (a service code)")
        updated = replace(alert, state="referred", closed_at=now, referred_to=referred_to.strip())
    else:  # reassign
        if current not in OPEN_STATES:
            raise _closed(alert, "reassign")
        if not assignee:
            raise TransitionRefused("assignee_required", "reassigning needs the user id of the new assignee")
        if assignee == alert.assigned_to:
            raise TransitionRefused("same_assignee", f"the alert is already assigned to {assignee}")
        updated = replace(alert, assigned_to=assignee)
        note = (note + "; " if note else "") + f"assigned to {assignee}"
    return updated, Transition(action=action, actor=actor, at=now, from_state=current, to_state=updated.state,
                               from_level=alert.escalation_level, to_level=updated.escalation_level, note=note)
