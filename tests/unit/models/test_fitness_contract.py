"""The `fitness-test` contract and its path through the pipeline (pure, no services)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from models.codecs import EventRejected, decode_event, encode_batch
from models.contracts import FitnessTest
from models.fitness import TABLE_VERSION
from models.pipeline import ProcessedMessages, process_message
from services.platform.event_schemas import json_schemas
from tests import factories
from tests.unit.models.test_contracts import fitness


def rejected(payload: dict[str, Any]) -> EventRejected:
    with pytest.raises(EventRejected) as caught:
        decode_event(json.dumps(payload).encode())
    return caught.value


@pytest.mark.parametrize(("overrides", "reason"), [
    ({"run_1000m_s": 230}, "fitness-test.run_1000m_s: run_1000m is not tested in grade 8 (female); "
                           "that grade's items are vital_capacity, run_50m, sit_and_reach, sit_ups_1min, "
                           "standing_long_jump, run_800m"),
    ({"pull_ups_count": 3}, "fitness-test.pull_ups_count: pull_ups is not tested in grade 8 (female)"),
    ({"rope_skipping_count": 120}, "fitness-test.rope_skipping_count: rope_skipping_1min is not tested in grade 8"),
    ({"grade": 2}, "fitness-test.sit_ups_count: sit_ups_1min is not tested in grade 2 (female)"),
    ({"run_50m_s": 3.0}, "fitness-test.run_50m_s: 3.0 outside 5.5..30"),
    ({"vital_capacity_ml": 20000}, "fitness-test.vital_capacity_ml: 20000 outside 200..9000"),
    ({"run_800m_s": 60}, "fitness-test.run_800m_s: 60 outside 130..900"),
    ({"sit_ups_count": -1}, "fitness-test.sit_ups_count: -1 outside 0..100"),
    ({"sit_ups_count": 12.5}, "fitness-test.sit_ups_count: expected an integer, got 12.5"),
    ({"grade": 13}, "fitness-test.grade: 13 outside 1..12"),
    ({"exempt": True, "exemption_reason": "illness"}, "fitness-test.exempt: a wholly exempted test (免测) carries"),
    ({"exempt_items": ["run_800m"], "exemption_reason": "injury"},
     "fitness-test.run_800m_s: run_800m is both exempted and measured"),
    ({"exempt_items": ["run_1000m"], "exemption_reason": "injury"},
     "fitness-test.exempt_items: run_1000m is not tested in grade 8"),
    ({"exempt_items": ["sit_ups_count"]}, "fitness-test.exempt_items"),
    ({"exemption_reason": "illness"}, "fitness-test.exemption_reason: only allowed with exempt or exempt_items"),
])
def test_rejections_say_why(overrides: dict[str, Any], reason: str) -> None:
    error = rejected(fitness(**overrides))
    assert error.code == "invalid_field"
    assert error.reason.startswith(reason), error.reason


def test_exemptions_need_a_reason() -> None:
    payload = fitness(exempt=True)
    for name in ("vital_capacity_ml", "run_50m_s", "sit_and_reach_cm", "sit_ups_count", "standing_long_jump_cm",
                 "run_800m_s"):
        payload.pop(name)
    assert "exemption_reason: required when exempt" in rejected(payload).reason
    payload["exemption_reason"] = "disability"
    event = decode_event(json.dumps(payload).encode())
    assert isinstance(event, FitnessTest)
    assert event.exempt and event.height_cm == 158.0  # height and weight may still be measured


def test_missing_items_stay_missing_through_the_pipeline() -> None:
    payload = fitness()
    del payload["run_800m_s"]
    out = ProcessedMessages()
    process_message(json.dumps(payload).encode(), expected_family="fitness-test", out=out)
    assert out.rejected == [] and len(out.fitness) == 1
    result = out.fitness[0].result
    assert out.fitness[0].event.run_800m_s is None
    assert result.status == "incomplete" and result.missing_items == ("run_800m",)
    assert result.total is None and result.table_version == TABLE_VERSION


def test_a_batch_with_one_foreign_item_rejects_only_that_member() -> None:
    events = [factories.fitness(n) for n in range(3)]
    wire = json.loads(encode_batch(events))
    wire["events"][1]["run_800m_s"] = 230.0  # a boy's test with the girls' run
    out = ProcessedMessages()
    process_message(json.dumps(wire).encode(), expected_family="fitness-test", out=out)
    assert len(out.fitness) == 2 and out.accepted == 2
    assert [(r.item_index, r.code) for r in out.rejected] == [(1, "invalid_field")]
    assert "run_800m is not tested in grade 8 (male)" in out.rejected[0].reason
    assert all(item.result.status == "complete" for item in out.fitness)


def test_a_fitness_event_on_another_topic_is_refused() -> None:
    out = ProcessedMessages()
    process_message(factories.fitness(1).model_dump_json(by_alias=True).encode(),
                    expected_family="bmi-screening", out=out)
    assert [r.code for r in out.rejected] == ["wrong_topic"]


def test_the_json_schema_lists_every_item_as_optional() -> None:
    schema = json_schemas()["fitness-test.v1"]
    for name in ("height_cm", "weight_kg", "vital_capacity_ml", "run_50m_s", "sit_and_reach_cm",
                 "rope_skipping_count", "sit_ups_count", "shuttle_run_50m_x8_s", "standing_long_jump_cm",
                 "pull_ups_count", "run_800m_s", "run_1000m_s"):
        assert name in schema["properties"] and name not in schema["required"]
    assert {"schema", "sex", "grade", "measured_on", "screener"} <= set(schema["required"])
