"""The alert state machine, deadlines, repeats and escalation with an explicit clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from models.alerts import (
    AlertState,
    TransitionRefused,
    apply_action,
    escalate,
    merge_repeat,
    new_alert,
)
from models.pipeline import ProcessedMessages, classify_event
from models.rules import AlertCandidate, evaluate_batch
from tests import factories
from tests.paths import ROOT

T0 = datetime(2025, 10, 15, 9, 0, tzinfo=UTC)


def candidate(answers: list[int], n: int = 1) -> AlertCandidate:
    batch = ProcessedMessages()
    classify_event(factories.survey(n, answers=answers), batch)
    return evaluate_batch(batch)[0]


def opened(answers: list[int] | None = None) -> AlertState:
    return new_alert(candidate(answers or [0] * 8 + [1]), now=T0)[0]


def test_urgent_must_be_acknowledged_within_the_hour() -> None:
    state, transition = new_alert(candidate([0] * 8 + [1]), now=T0)
    assert state.state == "open" and state.ack_deadline == T0 + timedelta(hours=1)
    assert transition.actor.startswith("rule:phq-item9-self-harm@1")


def test_full_path_to_resolved() -> None:
    state = opened()
    state, _ = apply_action(state, "acknowledge", actor="c-1", now=T0 + timedelta(minutes=5))
    assert state.state == "acknowledged" and state.assigned_to == "c-1"
    state, _ = apply_action(state, "start", actor="c-1", now=T0 + timedelta(minutes=6))
    state, note = apply_action(state, "note", actor="c-1", now=T0 + timedelta(minutes=7), note="met the student")
    assert note.note == "met the student" and state.state == "in_progress"
    state, done = apply_action(state, "resolve", actor="c-1", now=T0 + timedelta(hours=2),
                               outcome="support_in_school")
    assert (state.state, state.outcome, done.from_state, done.to_state) == (
        "resolved", "support_in_school", "in_progress", "resolved")


def test_resolving_a_resolved_alert_is_refused_with_the_reason() -> None:
    state = apply_action(opened(), "acknowledge", actor="c", now=T0)[0]
    state = apply_action(state, "resolve", actor="c", now=T0, outcome="concern_not_confirmed")[0]
    with pytest.raises(TransitionRefused) as refused:
        apply_action(state, "resolve", actor="c", now=T0, outcome="concern_not_confirmed")
    assert refused.value.code == "already_closed"
    assert "already resolved" in refused.value.reason


@pytest.mark.parametrize(("action", "code"), [("resolve", "not_acknowledged"), ("start", "not_acknowledged"),
                                              ("refer", "not_acknowledged")])
def test_open_alerts_need_acknowledgement_first(action: str, code: str) -> None:
    with pytest.raises(TransitionRefused) as refused:
        apply_action(opened(), action, actor="c", now=T0, outcome="concern_confirmed",  # type: ignore[arg-type]
                     referred_to="cmhc")
    assert refused.value.code == code


def test_resolve_needs_a_known_outcome_and_refer_a_target() -> None:
    state = apply_action(opened(), "acknowledge", actor="c", now=T0)[0]
    with pytest.raises(TransitionRefused, match="outcome"):
        apply_action(state, "resolve", actor="c", now=T0, outcome="fine")
    with pytest.raises(TransitionRefused, match="referred_to"):
        apply_action(state, "refer", actor="c", now=T0, referred_to="  ")
    referred = apply_action(state, "refer", actor="c", now=T0, referred_to="county-cmhc")[0]
    assert referred.state == "referred" and referred.closed_at == T0


def test_double_acknowledge_and_same_assignee_conflict() -> None:
    state = apply_action(opened(), "acknowledge", actor="c", now=T0)[0]
    with pytest.raises(TransitionRefused) as refused:
        apply_action(state, "acknowledge", actor="c", now=T0)
    assert refused.value.code == "already_acknowledged"
    with pytest.raises(TransitionRefused) as same:
        apply_action(state, "reassign", actor="c", now=T0, assignee="c")
    assert same.value.code == "same_assignee"
    moved, transition = apply_action(state, "reassign", actor="c", now=T0, assignee="c-2")
    assert moved.assigned_to == "c-2" and "c-2" in (transition.note or "")


def test_escalation_with_a_controllable_clock() -> None:
    state = opened()
    assert escalate(state, now=T0 + timedelta(minutes=59)) is None
    first = escalate(state, now=T0 + timedelta(minutes=61))
    assert first is not None
    state, transition = first
    assert (state.escalation_level, transition.to_level, transition.actor) == (1, 1, "system:escalation")
    # The next step counts from the missed one, not from the (late) sweep; the deadline stays.
    assert (state.escalate_at, state.ack_deadline) == (T0 + timedelta(hours=2), T0 + timedelta(hours=1))
    assert escalate(state, now=T0 + timedelta(minutes=119)) is None
    second = escalate(state, now=T0 + timedelta(hours=5))
    assert second is not None and second[0].escalation_level == 2
    assert escalate(second[0], now=T0 + timedelta(days=3)) is None


def test_acknowledged_alerts_do_not_escalate() -> None:
    state = apply_action(opened(), "acknowledge", actor="c", now=T0 + timedelta(minutes=30))[0]
    assert escalate(state, now=T0 + timedelta(hours=9)) is None


def test_repeat_raises_priority_and_pulls_the_deadline_earlier() -> None:
    moderate = new_alert(candidate([2, 2, 2, 2, 2, 2, 2, 1, 0], n=2), now=T0)[0]
    assert (moderate.priority, moderate.ack_deadline) == ("medium", T0 + timedelta(hours=72))
    severe = candidate([3, 3, 3, 3, 3, 2, 2, 2, 0], n=2)
    later = T0 + timedelta(hours=1)
    merged, transition = merge_repeat(moderate, severe, now=later)
    assert (merged.priority, merged.occurrences) == ("high", 2)
    assert merged.ack_deadline == later + timedelta(hours=24)
    assert "medium -> high" in (transition.note or "")
    again, _ = merge_repeat(merged, candidate([2, 2, 2, 2, 2, 2, 2, 1, 0], n=2), now=later)
    assert again.priority == "high" and again.ack_deadline == merged.ack_deadline


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="timezone"):
        escalate(opened(), now=datetime(2025, 1, 1))


def test_the_open_states_have_one_home() -> None:
    """`models.alerts` lists the open states once; SQL and the API take them from there."""
    import re

    from models.alerts import OPEN_STATES, OPEN_STATES_IN_ORDER, OPEN_STATES_SQL, STATES

    assert OPEN_STATES_IN_ORDER == ("open", "acknowledged", "in_progress")
    assert OPEN_STATES == set(OPEN_STATES_IN_ORDER) < set(STATES)
    assert OPEN_STATES_SQL == "'open', 'acknowledged', 'in_progress'"
    root = ROOT
    retyped = re.compile(r"""['"]open['"],\s*['"]acknowledged['"],\s*['"]in_progress['"]""")
    found = [f"{path.relative_to(root)}" for folder in ("models", "services", "streams")
             for path in sorted((root / folder).rglob("*.py"))
             if path.name != "alerts.py" or path.parent.name != "models"
             if retyped.search(path.read_text(encoding="utf-8"))]
    assert found == []
