"""Alert rules: item-level self-harm, severity bands, growth and vision concerns, versioning."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from models.pipeline import ProcessedMessages, classify_event
from models.rules import (
    RULES,
    AlertCandidate,
    InvalidAlertMessage,
    decode_alert_message,
    decode_alert_messages,
    encode_alert_batch,
    encode_alert_message,
    evaluate_batch,
)
from tests import factories


def _alerts(*events: object) -> list[AlertCandidate]:
    batch = ProcessedMessages()
    for event in events:
        classify_event(event, batch)  # type: ignore[arg-type]
    return evaluate_batch(batch)


@pytest.mark.parametrize("item9", [1, 2, 3])
def test_any_self_harm_answer_is_urgent_whatever_the_total(item9: int) -> None:
    alerts = _alerts(factories.survey(1, answers=[0, 0, 0, 0, 0, 0, 0, 0, item9]))
    assert [(a.concern, a.priority, a.team, a.rule_id) for a in alerts] == [
        ("self_harm", "urgent", "counselling", "phq-item9-self-harm")]
    assert alerts[0].evidence["answer"] == item9
    assert alerts[0].evidence["total"] == item9


def test_no_alert_for_a_mild_phq_without_self_harm() -> None:
    assert _alerts(factories.survey(2, answers=[1, 1, 0, 1, 0, 0, 1, 0, 0])) == []


def test_phq9_item9_counts_as_well() -> None:
    alerts = _alerts(factories.survey(3, instrument="phq-9", answers=[0] * 8 + [1]))
    assert [a.concern for a in alerts] == ["self_harm"]


def test_phqa_supplementary_suicidality_items_are_urgent() -> None:
    alerts = _alerts(factories.survey(4, answers=[0] * 9 + [0, 0, 1, 0]))
    assert [(a.rule_id, a.priority) for a in alerts] == [("phqa-suicidality", "urgent")]


def test_severe_band_raises_its_own_alert_next_to_self_harm() -> None:
    alerts = _alerts(factories.survey(5, answers=[3, 3, 3, 3, 2, 2, 2, 2, 1]))
    assert {(a.concern, a.priority) for a in alerts} == {("self_harm", "urgent"), ("depression", "high")}


def test_moderately_severe_and_gad_severe() -> None:
    phq = _alerts(factories.survey(6, answers=[2, 2, 2, 2, 2, 2, 2, 1, 0]))
    gad = _alerts(factories.survey(7, instrument="gad-7", answers=[3, 3, 3, 2, 2, 1, 1]))
    assert [(a.concern, a.priority) for a in phq] == [("depression", "medium")]
    assert [(a.concern, a.priority, a.team) for a in gad] == [("anxiety", "medium", "counselling")]


def test_growth_rules_go_to_the_school_doctor() -> None:
    obese = _alerts(factories.bmi(8, height_cm=140.0, weight_kg=60.0, age_months=130.0))
    thin = _alerts(factories.bmi(9, height_cm=150.0, weight_kg=28.0, age_months=150.0))
    normal = _alerts(factories.bmi(10, height_cm=140.0, weight_kg=33.0, age_months=130.0))
    assert [(a.concern, a.team) for a in obese] == [("obesity", "school_doctor")]
    assert [(a.concern, a.priority) for a in thin] == [("severe_thinness", "high")]
    assert normal == []


def test_high_myopia_in_either_eye() -> None:
    assert [a.concern for a in _alerts(factories.vision(11, se_left=-6.5))] == ["high_myopia"]
    assert _alerts(factories.vision(12, se_left=-5.75, se_right=-1.0)) == []


def test_old_observations_raise_nothing() -> None:
    old = (factories.NOW - timedelta(days=400)).date().isoformat()
    assert _alerts(factories.survey(13, answers=[0] * 8 + [2], answered_on=old)) == []


def test_alert_ids_are_deterministic_per_event_and_rule() -> None:
    survey = factories.survey(14, answers=[3, 3, 3, 3, 2, 2, 2, 2, 1])
    first, second = _alerts(survey), _alerts(survey)
    assert [a.alert_event_id for a in first] == [a.alert_event_id for a in second]
    assert len({a.alert_event_id for a in first}) == 2


def test_message_round_trip_carries_no_name_and_takes_priority_from_the_rule() -> None:
    alert = _alerts(factories.survey(15, answers=[0] * 8 + [1]))[0]
    message = encode_alert_message(alert)
    assert decode_alert_message(message) == alert
    tampered = message.replace(b'"priority":"urgent"', b'"priority":"low"')
    assert decode_alert_message(tampered).priority == "urgent"
    assert b"name" not in message


def test_alert_batch_round_trip_keeps_good_members_and_reports_bad_ones() -> None:
    alerts = _alerts(factories.survey(16, answers=[3, 3, 3, 3, 2, 2, 2, 2, 1]))
    assert len(alerts) == 2
    message = json.loads(encode_alert_batch(alerts))
    message["alerts"].append({"schema": {"family": "intervention-alert", "version": 1}, "rule_id": "nope"})
    good, bad = decode_alert_messages(json.dumps(message))
    assert good == alerts
    assert len(bad) == 1 and isinstance(bad[0], InvalidAlertMessage)
    # A single-alert message still decodes through the same function.
    assert decode_alert_messages(encode_alert_message(alerts[0])) == ([alerts[0]], [])
    assert decode_alert_messages(b"not json")[0] == []


@pytest.mark.parametrize("payload", [b"", b"{}", b'{"schema": {"family": "x", "version": 1}}', b"[1]"])
def test_bad_messages_are_refused(payload: bytes) -> None:
    with pytest.raises(InvalidAlertMessage):
        decode_alert_message(payload)


def test_rules_are_versioned_and_unique() -> None:
    keys = [(rule.id, rule.version) for rule in RULES]
    assert len(keys) == len(set(keys))
