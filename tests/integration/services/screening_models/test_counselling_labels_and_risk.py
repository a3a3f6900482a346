"""Counselling outcomes as depression labels, and the risk rankings under row-level security.

Real PostgreSQL throughout: alerts are applied by the alert store and closed through the API by
a counsellor, the training set is read back from the archive, and the ranking is read through
the API and directly under the per-request role.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from models.rules import PHQ_SEVERE, SELF_HARM_ITEM, AlertCandidate, Rule
from services.access.users import add_user
from services.devtools.seed import seed_archive
from services.platform.settings import Settings
from services.server import create_api
from services.server.thread import serve_in_thread
from services.web.pages import SESSION_COOKIE
from tests.integration.services.alerts.test_alerts_escalation import apply
from tests.integration.services.alerts.test_alerts_flow import rows_as
from tests.integration.web_client import web_session_cookie

pytestmark = pytest.mark.integration


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _alert_for(rule: Rule, key: str, school: str, observed_on: date) -> AlertCandidate:
    source = uuid.uuid4()
    return AlertCandidate(
        alert_event_id=uuid.uuid5(source, rule.id), source_event_id=source, source_family="psych-survey",
        student_key=key, school_id=school, rule_id=rule.id, rule_version=rule.version, concern=rule.concern,
        priority=rule.priority, team=rule.team, observed_on=observed_on,
        submitted_at=datetime.combine(observed_on, datetime.min.time(), UTC), evidence={"total": 21},
    )


def _depression_samples(settings: Settings) -> dict[tuple[str, int], tuple[bool, str]]:
    from services.screening_models.service import build_training_sets

    samples = build_training_sets(settings)["depression"]
    return {(key, int(year)): (bool(label), source) for key, year, label, source
            in zip(samples.student_keys, samples.origin_years, samples.labels, samples.label_sources, strict=True)}


def test_closed_counselling_alerts_become_depression_labels(isolated: Settings, tmp_path: Path) -> None:
    from models.screening import task
    from services.screening_models.service import train_task

    seed_archive(isolated, students=1500, out_dir=tmp_path / "province")
    before = _depression_samples(isolated)
    assert before and {source for _, source in before.values()} == {"screening"}
    year = max(y for _, y in before) - 1  # an origin year whose label term is in the archive
    positives = sorted(k for (k, y), (label, _) in before.items() if y == year and label)[:3]
    negatives = sorted(k for (k, y), (label, _) in before.items() if y == year and not label)[:3]
    assert len(positives) == 3 and len(negatives) == 3
    with psycopg.connect(isolated.pg_dsn("app")) as conn:
        schools: dict[str, str] = dict(conn.execute("SELECT student_key, school_id FROM archive.students"
                                    " WHERE student_key = ANY(%s)", (positives + negatives,)).fetchall())

    term_day = date(year + 1, 10, 20)  # the autumn term after the origin year
    # Positive screens the counsellor found no concern in; negative screens with a self-harm answer
    # the counsellor confirmed; one outcome that says nothing either way.
    plan: list[tuple[str, Rule, str]] = [
        (positives[0], PHQ_SEVERE, "concern_not_confirmed"), (positives[1], PHQ_SEVERE, "concern_not_confirmed"),
        (positives[2], PHQ_SEVERE, "parents_informed"),
        (negatives[0], SELF_HARM_ITEM, "concern_confirmed"), (negatives[1], SELF_HARM_ITEM, "support_in_school"),
        (negatives[2], SELF_HARM_ITEM, "refer"),
    ]
    now = datetime.combine(term_day, datetime.min.time(), UTC) + timedelta(hours=9)
    apply(isolated, [_alert_for(rule, key, schools[key], term_day) for key, rule, _ in plan], now)
    counsellor = _auth(add_user(isolated, "c-labels", "counsellor", schools=sorted(set(schools.values()))))
    with serve_in_thread(create_api(isolated)) as url:
        queue = httpx.get(f"{url}/alerts", headers=counsellor, params={"limit": 50}).json()
        by_student = {alert["student_key"]: alert["alert_id"] for alert in queue}
        for key, _, outcome in plan:
            base = f"{url}/alerts/{by_student[key]}"
            assert httpx.post(f"{base}/acknowledge", headers=counsellor).status_code == 200
            if outcome == "refer":
                done = httpx.post(f"{base}/refer", headers=counsellor, json={"referred_to": "county-mh-centre"})
            else:
                done = httpx.post(f"{base}/resolve", headers=counsellor, json={"outcome": outcome})
            assert done.status_code == 200, done.text

    after = _depression_samples(isolated)
    assert after[positives[0], year] == (False, "counselling_outcome")
    assert after[positives[1], year] == (False, "counselling_outcome")
    assert after[positives[2], year] == (True, "screening")  # parents informed: the screen stands
    assert after[negatives[0], year] == (True, "counselling_outcome")
    assert after[negatives[1], year] == (True, "counselling_outcome")
    assert after[negatives[2], year] == (True, "counselling_outcome")  # referred on
    changed = {k for k in after if after[k] != before[k]}
    assert changed == {(key, year) for key in (*positives[:2], *negatives)}

    # The model card says how many labels came from counsellors' findings.
    from services.screening_models.service import build_training_sets

    trained = train_task(task("depression"), build_training_sets(isolated)["depression"])
    assert trained.card.label_sources["counselling_outcome"] == 5
    assert "counselling outcome 5" in trained.card.to_markdown()


SCORES: list[tuple[str, str, str, float]] = [
    # student, school, model, score
    ("a" * 64, "SR1", "depression", 0.91), ("b" * 64, "SR1", "depression", 0.40),
    ("c" * 64, "SR2", "depression", 0.95), ("a" * 64, "SR1", "myopia_onset", 0.70),
    ("c" * 64, "SR2", "overweight", 0.60),
]


@pytest.fixture
def scored(isolated: Settings) -> Settings:
    # Written as the scorer writes them: the app role, after a scoring pass.
    with psycopg.connect(isolated.pg_dsn("app")) as conn:
        conn.cursor().executemany("INSERT INTO ml.risk_scores (student_key, school_id, model, version, score)"
                                  " VALUES (%s, %s, %s, 'v-test', %s)", SCORES)
    return isolated


def _ranking(url: str, token: str, model: str, **params: Any) -> list[dict[str, Any]]:
    response = httpx.get(f"{url}/risk", headers=_auth(token), params={"model": model, **params})
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()
    return rows


def test_risk_rankings_reach_only_the_team_and_schools_that_act_on_them(scored: Settings) -> None:
    settings = scored
    counsellor = add_user(settings, "c-r1", "counsellor", schools=["SR1"])
    other_counsellor = add_user(settings, "c-r2", "counsellor", schools=["SR2"])
    doctor = add_user(settings, "d-r1", "school_doctor", schools=["SR1"])
    office = add_user(settings, "office-r", "health_office")
    with serve_in_thread(create_api(settings)) as url:
        mine = _ranking(url, counsellor, "depression")
        assert [(r["rank"], r["student_key"], r["score"]) for r in mine] == [
            (1, "a" * 64, pytest.approx(0.91)), (2, "b" * 64, pytest.approx(0.40))]
        assert _ranking(url, counsellor, "myopia_onset") == []  # the school doctor's model
        assert [r["student_key"] for r in _ranking(url, other_counsellor, "depression")] == ["c" * 64]
        assert [r["model"] for r in _ranking(url, doctor, "myopia_onset")] == ["myopia_onset"]
        assert _ranking(url, doctor, "depression") == []
        assert _ranking(url, counsellor, "depression", school_id="SR2") == []
        assert httpx.get(f"{url}/risk", headers=_auth(office), params={"model": "depression"}).status_code == 403
        assert httpx.get(f"{url}/risk", params={"model": "depression"}).status_code == 401
        assert httpx.get(f"{url}/risk", headers=_auth(counsellor), params={"model": "x"}).status_code == 422

        # The same list as a web page (zh-CN by default), with the role's own models only.
        def page(token: str, **params: str) -> httpx.Response:
            return httpx.get(f"{url}/web/risk", cookies={SESSION_COOKIE: web_session_cookie(url, token)}, params=params)

        counsellor_page = page(counsellor)
        assert counsellor_page.status_code == 200
        assert re.findall(r'data-student="([0-9a-f]{64})"', counsellor_page.text) == ["a" * 64, "b" * 64]
        assert 'id="model-depression" href="/web/risk?model=depression" aria-current="page"' in counsellor_page.text
        assert 'id="model-myopia_onset"' not in counsellor_page.text
        assert "这不是诊断" in counsellor_page.text
        # A counsellor asking for a school doctor's model gets their own model's list instead.
        assert re.findall(r'data-student="([0-9a-f]{64})"', page(counsellor, model="overweight").text) == [
            "a" * 64, "b" * 64]
        doctor_page = page(doctor)
        assert 'data-model="myopia_onset"' in doctor_page.text and 'id="model-depression"' not in doctor_page.text
        assert page(office).status_code == 403

    # Row-level security, not only the endpoint: the same rows directly under the request role.
    query = "SELECT student_key, model FROM ml.risk_scores ORDER BY 1, 2"
    assert rows_as(settings, counsellor, query) == [("a" * 64, "depression"), ("b" * 64, "depression")]
    assert rows_as(settings, doctor, query) == [("a" * 64, "myopia_onset")]
    assert rows_as(settings, office, query) == []

    # Reading depression scores is a read of psychological data: audited, per student shown.
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        audited = conn.execute("SELECT user_id, student_key, what FROM audit.psych_reads"
                               " WHERE what = 'risk_scores' ORDER BY id").fetchall()
    assert ("c-r1", "a" * 64, "risk_scores") in audited and ("c-r1", "b" * 64, "risk_scores") in audited
    assert all(user != "d-r1" for user, _, _ in audited)


def test_the_ranking_is_what_row_level_security_lets_through_for_every_role(scored: Settings) -> None:
    # The ranking names the caller's schools so the index finds them (issue 18): for every kind of
    # scope (served, led, a county's, everything) it must be exactly what the policy alone allows.
    settings = scored
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        for school, county in (("SR1", "C1"), ("SR2", "C2")):
            conn.execute("INSERT INTO archive.schools VALUES (%s, %s, %s, '县', 'urban', 'junior', false, 300, 1)",
                         (school, f"学校 {school}", county))
    users = {
        "counsellor leading SR2": add_user(settings, "c-lead", "counsellor", schools=["SR1"], lead_schools=["SR2"]),
        "county officer of C2": add_user(settings, "co-2", "county_officer", counties=["C2"]),
        "admin": add_user(settings, "admin-r", "admin"),
        "school doctor of SR1 and SR2": add_user(settings, "d-both", "school_doctor", schools=["SR1", "SR2"]),
    }
    seen: set[str] = set()
    with serve_in_thread(create_api(settings)) as url:
        for who, token in users.items():
            for model in ("depression", "myopia_onset", "overweight"):
                policy = rows_as(settings, token, "SELECT student_key, school_id FROM ml.risk_scores"
                                 f" WHERE model = '{model}' ORDER BY score DESC, student_key")
                ranking = [(r["student_key"], r["school_id"]) for r in _ranking(url, token, model)]
                assert ranking == policy, (who, model)
                seen.update(f"{who}/{model}" for _ in ranking)
    # Every scope let something through somewhere, and the lead counsellor sees SR2's scores.
    assert {entry.split("/")[0] for entry in seen} == set(users)
    assert "counsellor leading SR2/overweight" in seen
