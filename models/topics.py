"""Kafka topic names and what they carry. Pure data: the admin adapter and faust both read it.

Input topics are keyed by school id, so one student's events stay in one partition, in order.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class TopicSpec:
    name: str
    purpose: str
    # None: the deployment's default partition count (Settings.topic_partitions).
    partitions: int | None = None
    retention_days: int = 14


HEALTH_RECORDS = "health-records"
VISION_SCREENINGS = "vision-screenings"
BMI_SCREENINGS = "bmi-screenings"
PSYCH_SURVEYS = "psych-surveys"
FITNESS_TESTS = "fitness-tests"
DEAD_LETTERS = "dead-letters"
INTERVENTION_ALERTS = "intervention-alerts"

#: Which event family each input topic carries.
INPUT_TOPICS: dict[str, str] = {
    HEALTH_RECORDS: "health-record",
    VISION_SCREENINGS: "vision-screening",
    BMI_SCREENINGS: "bmi-screening",
    PSYCH_SURVEYS: "psych-survey",
    FITNESS_TESTS: "fitness-test",
}

#: The topic for each event family (the importer and the API publish by family).
TOPIC_FOR_FAMILY: dict[str, str] = {family: topic for topic, family in INPUT_TOPICS.items()}

TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(name=HEALTH_RECORDS, purpose="student registration, status changes and transfers"),
    TopicSpec(name=VISION_SCREENINGS, purpose="uncorrected acuity and refraction screenings"),
    TopicSpec(name=BMI_SCREENINGS, purpose="height and weight screenings"),
    TopicSpec(name=PSYCH_SURVEYS, purpose="PHQ-A/PHQ-9, GAD-7 and health-literacy answers"),
    TopicSpec(name=FITNESS_TESTS, purpose="physical-fitness tests (national standard, 2014 revision)"),
    TopicSpec(name=DEAD_LETTERS, purpose="rejected messages with the reason and their origin",
              retention_days=90),
    TopicSpec(name=INTERVENTION_ALERTS, purpose="early-intervention alerts for counsellors and doctors",
              retention_days=30),
)
