"""Single screenings and health records from school doctors and screening devices, submitted through
the API (`POST /screenings`) or the web pages (one screening, the class sheet): both call
`submit_screening`, so the checks are one.

The body is one row as the importer reads it (the same columns as the CSV files, the student
number included), validated by `models.importing` and the event contracts. The student number
becomes `student_key` here and goes no further; the event is published to Kafka keyed by school,
and the answer carries its classification and the alerts its rules will raise.
"""

from __future__ import annotations

import asyncio
import dataclasses
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field

from models.codecs import encode_event
from models.contracts import Event
from models.fitness import FitnessResult
from models.importing import HeaderRejected, RowRejected, check_row
from models.pipeline import ProcessedMessages
from models.rules import evaluate_batch
from models.topics import TOPIC_FOR_FAMILY
from services.access.session import Session, user_session
from services.platform.kafka import EventProducer

SUBMIT_ROLES = ("school_doctor", "device", "admin")

Cell = str | int | float | bool | list[int] | None


class ScreeningIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["records", "vision", "bmi", "survey", "fitness"]
    row: Annotated[dict[str, Cell], Field(description="the columns of the importer's CSV file of this kind")]


class ScreeningOut(BaseModel):
    event_id: str
    family: str
    topic: str
    classification: dict[str, Any]
    alerts: list[dict[str, Any]]


def _cell_text(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ";".join(str(item) for item in value)
    return str(value)


def _classification(batch: ProcessedMessages) -> dict[str, Any]:
    for items in (batch.surveys, batch.growth, batch.vision):
        for item in items:
            return dataclasses.asdict(item.result)
    for fitness in batch.fitness:
        return fitness_classification(fitness.result)
    return {}


def fitness_classification(result: FitnessResult) -> dict[str, Any]:
    """A scored fitness test as JSON: item scores, BMI, total and band (None where not scored)."""
    def number(value: Decimal | None) -> float | None:
        return None if value is None else float(value)

    return {"status": result.status, "grade": result.grade, "bmi": number(result.bmi),
            "bmi_category": result.bmi_category, "bmi_score": result.bmi_score,
            "item_scores": {score.item: score.score for score in result.items},
            "standard_score": number(result.standard_score), "bonus": result.bonus, "total": number(result.total),
            "band": result.band, "failed_items": list(result.failed_items),
            "missing_items": list(result.missing_items), "exempt_items": list(result.exempt_items),
            "table_version": result.table_version}


WRITE_REFUSALS = {
    "not_your_school": "you do not serve this school",
    "not_enrolled": "the student is not enrolled at any school: register them first (a health record, action register)",
    "enrolled_elsewhere": "the student is not enrolled at this school; only the school where they are enrolled may"
                          " submit for them (a move between schools is a transfer)",
    "role_may_not_submit": "this role may not submit records",
}


async def check_write_scope(session: Session, kind: str, event: Event) -> None:
    """403 unless the database lets the session's user write this event (`auth.write_refusal`).

    Transfers are recorded in `audit.transfers` in the same transaction.
    """
    action = getattr(event, "action", None)
    row = await session.fetch_one("SELECT auth.write_refusal(%s, %s, %s, %s) AS refusal",
                                  (event.student_key, event.school_id, kind, action))
    refusal = row["refusal"] if row else "unauthenticated"
    if refusal is not None:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            {"code": refusal, "reason": WRITE_REFUSALS.get(refusal, refusal)})
    if action == "transfer":
        await session.conn.execute(
            "INSERT INTO audit.transfers (user_id, student_key, school_id, to_school_id, event_id)"
            " VALUES ('', %s, %s, %s, %s)",
            (event.student_key, event.school_id, getattr(event, "to_school_id", None), event.event_id))


async def submit_screening(request: Request, token: str, body: ScreeningIn) -> ScreeningOut:
    """Check, classify and publish one row as the token's user; the answer says what its rules raise.

    403 outside the caller's schools or write scope, 422 for a row that is not valid, 503 when
    Kafka did not take the event (nothing was stored: the client may retry as is).
    """
    settings = request.app.state.settings
    row = {column: _cell_text(value) for column, value in body.row.items()}
    secret = settings.student_key_secret.get_secret_value().encode()
    async with user_session(request, token) as session:
        session.require(*SUBMIT_ROLES)
        school_id = row.get("school_id", "")
        allowed = await session.fetch_one(
            "SELECT auth.sees_all() OR %s IN (SELECT auth.visible_schools()) AS ok", (school_id,))
        if not allowed or not allowed["ok"]:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"you do not serve school {school_id or '(none)'}")
        try:
            checked = check_row(body.kind, row, secret=secret, submitted_by=session.user_id, now=session.now)
        except HeaderRejected as error:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                                {"code": "wrong_columns", "reason": error.reason}) from None
        except RowRejected as error:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                                {"code": "invalid_field", "field": error.field, "reason": error.reason}) from None
        event, batch = checked.event, checked.batch
        await check_write_scope(session, body.kind, event)
    family = str(event.schema_.family)
    topic = settings.topic(TOPIC_FOR_FAMILY[family])
    try:
        producer: EventProducer = request.app.state.producer
        await producer.start()
        await asyncio.wait_for(producer.publish(topic, event.school_id.encode(), encode_event(event)), timeout=15)
    except Exception as error:
        # The event was not accepted by Kafka: nothing was stored, the client may retry as is.
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            f"could not publish the event ({type(error).__name__}); retry later") from None
    alerts = [{"concern": a.concern, "priority": a.priority, "team": a.team, "rule_id": a.rule_id,
               "rule_version": a.rule_version} for a in evaluate_batch(batch)]
    return ScreeningOut(event_id=str(event.event_id), family=family, topic=topic,
                        classification=_classification(batch), alerts=alerts)
