"""The archive writer's row builders: made from named fields, refusing what they cannot name."""

from __future__ import annotations

from typing import NamedTuple

import pytest

from models.contracts import BmiScreening
from models.growth import GrowthResult
from models.pipeline import ProcessedMessages, classify_event
from services.pipeline.archive_writer import GROWTH, GrowthRow, growth_row, row_builder
from tests import factories


class _Row(NamedTuple):
    event_id: object
    bmi: object


def test_a_column_that_neither_side_has_is_refused() -> None:
    class Row(NamedTuple):
        heigth_cm: object  # misspelt

    with pytest.raises(TypeError, match="heigth_cm: neither the event nor the result has it"):
        row_builder(Row, {}, event=BmiScreening, result=GrowthResult)


def test_a_column_both_sides_have_must_say_which() -> None:
    class Row(NamedTuple):
        sex: object

    with pytest.raises(TypeError, match="both the event and the result have it"):
        row_builder(Row, {}, event=BmiScreening, result=GrowthResult)


def test_a_source_naming_a_missing_field_or_a_missing_column_is_refused() -> None:
    with pytest.raises(TypeError, match="result has no field 'bmi_displayed'"):
        row_builder(_Row, {"bmi": "result.bmi_displayed"}, event=BmiScreening, result=GrowthResult)
    with pytest.raises(TypeError, match=r"has no column \['bmi_rounded'\]"):
        row_builder(_Row, {"bmi_rounded": "result.bmi_display"}, event=BmiScreening, result=GrowthResult)


def test_the_growth_row_puts_each_field_under_its_column() -> None:
    batch = ProcessedMessages()
    classify_event(factories.bmi(1, height_cm=150.0, weight_kg=32.0), batch)
    (item,) = batch.growth
    row = GrowthRow._make(growth_row(item))
    assert [name for name, _ in GROWTH.columns] == list(GrowthRow._fields)
    assert (row.height_cm, row.weight_kg) == (150.0, 32.0)
    assert (row.bmi_for_age_z, row.height_for_age_z, row.weight_for_age_z) == (
        item.result.bmi_for_age_z, item.result.height_for_age_z, item.result.weight_for_age_z)
    assert row.bmi_rounded == item.result.bmi_display
