"""The worker's per-message logic: what is accepted, and what a rejection carries."""

from __future__ import annotations

import json

from models.codecs import decode_event, encode_batch, encode_event
from models.pipeline import WHOLE_MESSAGE, ProcessedMessages, process_message
from tests import factories


def test_each_rejected_batch_member_carries_its_own_json() -> None:
    events = [factories.vision(n) for n in range(3)]
    payload = json.loads(encode_batch(events))
    payload["events"][1]["ucva_left"] = 7.5  # impossible acuity: rejected on its own
    out = ProcessedMessages()
    # Vision events on the BMI topic: the two valid members are rejected as wrong_topic.
    process_message(json.dumps(payload).encode(), expected_family="bmi-screening", out=out)
    assert out.accepted == 0
    by_index = {r.item_index: r for r in out.rejected}
    assert set(by_index) == {0, 1, 2}
    assert by_index[1].code == "invalid_field" and "ucva_left" in by_index[1].reason
    assert by_index[0].code == by_index[2].code == "wrong_topic"
    for index in (0, 2):
        assert decode_event(by_index[index].payload) == events[index]
        assert by_index[index].school_id == events[index].school_id


def test_a_single_bad_event_is_rejected_whole_with_its_bytes() -> None:
    out = ProcessedMessages()
    good = encode_event(factories.bmi(1))
    process_message(b"{not json", expected_family="bmi-screening", out=out)
    process_message(good, expected_family="bmi-screening", out=out)
    assert out.accepted == 1 and len(out.growth) == 1
    assert [(r.code, r.item_index, r.payload) for r in out.rejected] == [("not_json", WHOLE_MESSAGE, b"{not json")]
