"""Nothing a message contains can fail its batch: the per-message path is total in the bytes.

Hypothesis feeds arbitrary bytes, and JSON shaped like events with hostile values (NUL, lone
surrogates, huge numbers, deep nesting), through the worker's per-message path, the dead-letter
path (building, the topic's JSON and key, text safe for PostgreSQL) and the alert service's.
"""

from __future__ import annotations

import json
from base64 import b64decode
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.codecs import encode_batch, encode_event
from models.pipeline import WHOLE_MESSAGE, ProcessedMessages, process_message
from models.topics import INPUT_TOPICS
from services.alerts.service import candidates_of
from services.pipeline.ingest import PreparedBatch, RawMessage, dead_letter_record, prepare_message
from tests import factories

hostile_text = st.one_of(
    st.text(), st.sampled_from(["S\x00001", "\ud800", "\udfff\x00", "é" * 70, "S001"]),
    st.text(alphabet=st.characters(codec=None, categories=None), max_size=20),
)
hostile_number = st.one_of(st.integers(min_value=-(10**400), max_value=10**400), st.floats(), st.just(10**400))
json_values = st.recursive(
    st.none() | st.booleans() | hostile_number | hostile_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(hostile_text, children, max_size=4),
    max_leaves=20,
)


def _event_shaped(base: dict[str, Any], changes: dict[str, Any]) -> bytes:
    merged = base | changes
    return json.dumps(merged, allow_nan=True).encode("utf-8", "surrogatepass")


def _check(topic: str, value: bytes) -> None:
    message = RawMessage(topic=topic, partition=3, offset=11, value=value)
    part = PreparedBatch()
    prepare_message(message, INPUT_TOPICS.get(topic), part)
    for letter in part.dead_letters:
        for text in (letter.code, letter.reason, letter.school_id or "", letter.screener or "", letter.topic):
            assert "\x00" not in text
            text.encode("utf-8")  # no lone surrogate: PostgreSQL and the topic's key accept it
        key, published = dead_letter_record(letter)
        assert key is None or key.decode("ascii")
        document = json.loads(published)
        original = b64decode(document["payload_base64"])
        assert original == letter.payload and len(original) <= letter.payload_size
        if letter.item_index == WHOLE_MESSAGE:
            assert letter.payload == value[: len(letter.payload)] and letter.payload_size == len(value)
    candidates_of(topic, value, prefix="")  # the alert service's fast lane never raises either


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(topic=st.sampled_from(sorted(INPUT_TOPICS)), value=st.binary(max_size=2048))
def test_arbitrary_bytes(topic: str, value: bytes) -> None:
    _check(topic, value)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(topic=st.sampled_from(sorted(INPUT_TOPICS)),
       changes=st.dictionaries(st.sampled_from(["school_id", "screener", "height_cm", "event_id", "answers",
                                                "age_months", "schema", "measured_on", "student_key"]),
                               json_values, max_size=4))
def test_event_shaped_json_with_hostile_values(topic: str, changes: dict[str, Any]) -> None:
    single = json.loads(encode_event(factories.bmi(1)))
    _check(topic, _event_shaped(single, changes))
    envelope = json.loads(encode_batch([factories.bmi(2), factories.bmi(3)]))
    envelope["events"][1] = envelope["events"][1] | changes
    _check(topic, json.dumps(envelope).encode("utf-8", "surrogatepass"))


@given(depth=st.integers(min_value=500, max_value=100_000), opener=st.sampled_from([b"[", b'{"a":']))
@settings(max_examples=20, deadline=None)
def test_nesting_of_any_depth(depth: int, opener: bytes) -> None:
    closer = b"]" if opener == b"[" else b"}"
    value = opener * depth + (b"1" if opener != b"[" else b"") + closer * depth
    _check("psych-surveys", value)
    out = ProcessedMessages()
    process_message(value, expected_family="psych-survey", out=out)
    assert [r.code for r in out.rejected] in (["not_json"], ["processing_error"])


def test_a_message_that_raises_inside_processing_is_dead_lettered_alone(monkeypatch: Any) -> None:
    # The guard: whatever raises while one message is processed (here the classifier, on the
    # second member of an envelope), what that message had added is taken back and it becomes
    # one processing_error dead letter with its bytes; the other messages are untouched.
    import models.pipeline

    poisoned = factories.bmi(3)
    real = models.pipeline.classify_event

    def classify(event: Any, out: ProcessedMessages) -> None:
        if event.event_id == poisoned.event_id:
            raise ZeroDivisionError("a bug")
        real(event, out)

    monkeypatch.setattr(models.pipeline, "classify_event", classify)
    out = ProcessedMessages()
    envelope = encode_batch([factories.bmi(2), poisoned, factories.bmi(4)])
    process_message(encode_event(factories.bmi(1)), expected_family="bmi-screening", out=out)
    process_message(envelope, expected_family="bmi-screening", out=out)
    assert [item.event.event_id for item in out.growth] == [factories.bmi(1).event_id]
    [rejection] = out.rejected
    assert (rejection.code, rejection.item_index, rejection.payload) == ("processing_error", WHOLE_MESSAGE, envelope)
    assert "ZeroDivisionError" in rejection.reason and "a bug" not in rejection.reason
