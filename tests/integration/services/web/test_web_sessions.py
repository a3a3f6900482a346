"""Web sessions apart from API tokens: signing in opens an expiring session that sign-out revokes
on the server; API tokens expire; failed sign-ins and bad bearer tokens are recorded and slowed per
source; the pages take only a web session in their cookie, never an API token."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest

from services.access.users import add_user, hash_token
from services.platform.settings import Settings
from services.server import create_api
from services.server.thread import serve_in_thread
from tests.integration.web_client import WebClient

pytestmark = pytest.mark.integration


def test_sign_out_revokes_the_session_not_the_token(isolated: Settings, tmp_path: Path) -> None:
    token = add_user(isolated, "c-a", "counsellor", schools=["SA01"])
    with serve_in_thread(create_api(isolated)) as url:
        client = WebClient(url)
        client.login(token)
        session = client.cookies["shk_session"]
        assert session != token
        assert client.get("/web/alerts").status_code == 200
        with psycopg.connect(isolated.pg_dsn("admin")) as conn:
            kind, expires = conn.execute("SELECT kind, expires_at FROM auth.tokens WHERE token_sha256 = %s",
                                         (hash_token(session),)).fetchone() or (None, None)
            api_expiry = conn.execute("SELECT expires_at FROM auth.tokens WHERE token_sha256 = %s",
                                      (hash_token(token),)).fetchone()
        assert kind == "web_session" and expires is not None
        assert timedelta(hours=7) < expires - datetime.now(UTC) <= timedelta(hours=8, minutes=1)
        assert api_expiry and api_expiry[0] is not None  # API tokens expire too
        page = client.get("/web/alerts").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        assert csrf
        assert client.post("/web/logout", data={"csrf": csrf.group(1)}).status_code == 303
        # The old cookie, replayed after sign-out, opens nothing; the API token still works on the API.
        replay = httpx.get(f"{url}/web/alerts", headers={"Cookie": f"shk_session={session}"})
        assert replay.status_code == 303 and replay.headers["location"] == "/web/login"
        assert httpx.get(f"{url}/alerts", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        client.close()


def test_failed_sign_ins_are_recorded_and_slowed(isolated: Settings) -> None:
    add_user(isolated, "c-a", "counsellor", schools=["SA01"])
    with serve_in_thread(create_api(isolated)) as url:
        client = WebClient(url)
        timings = []
        for attempt in range(7):
            nonce = client.csrf("/web/login")
            started = time.monotonic()
            answer = client.post("/web/login", data={"token": f"shk_wrong{attempt}", "csrf": nonce})
            timings.append(time.monotonic() - started)
            assert answer.status_code == 401
        with psycopg.connect(isolated.pg_dsn("admin")) as conn:
            recorded = conn.execute("SELECT count(*), min(source) FROM auth.sign_in_failures").fetchone()
        assert recorded == (7, "127.0.0.1")
        # The sixth and seventh attempts waited (2 s, then 4 s); the first five did not.
        assert timings[5] >= 1.9 and timings[6] >= 3.9, timings
        client.close()


def test_bad_bearer_tokens_are_recorded_and_slowed_per_source(isolated: Settings) -> None:
    token = add_user(isolated, "c-a", "counsellor", schools=["SA01"])
    with serve_in_thread(create_api(isolated)) as url:
        timings = []
        for attempt in range(7):
            started = time.monotonic()
            answer = httpx.get(f"{url}/alerts", headers={"Authorization": f"Bearer shk_wrong{attempt}"}, timeout=60)
            timings.append(time.monotonic() - started)
            assert answer.status_code == 401
        # A request with a body is refused by the guard before its body is read: recorded and slowed too.
        started = time.monotonic()
        posted = httpx.post(f"{url}/screenings", headers={"Authorization": "Bearer shk_wrong7"},
                            json={"kind": "bmi", "row": {}}, timeout=60)
        assert posted.status_code == 401 and time.monotonic() - started >= 7.9
        # Slowed per source, refused tokens only: the user's own token is answered at once.
        started = time.monotonic()
        assert httpx.get(f"{url}/alerts", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert time.monotonic() - started < 1.9
    with psycopg.connect(isolated.pg_dsn("admin")) as conn:
        recorded = conn.execute("SELECT count(*), min(source), min(kind) FROM auth.sign_in_failures").fetchone()
    assert recorded == (8, "127.0.0.1", "bearer_token")
    # The sixth and seventh refusals waited (2 s, then 4 s); the first five did not.
    assert max(timings[:5]) < 1.9 and timings[5] >= 1.9 and timings[6] >= 3.9, timings


def test_an_api_token_in_the_cookie_opens_no_page(isolated: Settings) -> None:
    doctor = add_user(isolated, "d-a", "school_doctor", schools=["SA01"])
    counsellor = add_user(isolated, "c-a", "counsellor", schools=["SA01"])
    with serve_in_thread(create_api(isolated)) as url:
        page = httpx.get(f"{url}/web/doctor/follow-up", cookies={"shk_session": doctor})
        assert page.status_code == 303 and page.headers["location"] == "/web/login"
        posted = httpx.post(f"{url}/web/doctor/screening", cookies={"shk_session": doctor}, data={"kind": "bmi"})
        assert posted.status_code == 303 and posted.headers["location"] == "/web/login"
        assert httpx.get(f"{url}/web/alerts/feed", cookies={"shk_session": counsellor}).status_code == 401
        # Signed in, the same user's web session opens the pages.
        client = WebClient(url)
        client.login(doctor)
        assert client.get("/web/doctor/follow-up").status_code == 200
        client.close()


def test_unpublished_upload_files_are_removed_without_another_request(isolated: Settings) -> None:
    token = add_user(isolated, "d-a", "school_doctor", schools=["SA01"])
    app = create_api(isolated)
    app.state.upload_ttl_seconds = 2.0
    app.state.upload_sweep_seconds = 0.5
    header = "school_id,student_number,sex,birth_date,measured_on,height_cm,weight_kg,screener"
    content = f"{header}\nSA01,G110101201403070011,male,2014-03-07,2025-09-01,140.0,35.0,d-a\n".encode()
    with serve_in_thread(app) as url:
        client = WebClient(url)
        client.login(token)
        csrf = client.csrf("/web/doctor/import")
        assert client.post("/web/doctor/import", data={"kind": "bmi", "csrf": csrf},
                           files={"file": ("day.csv", content, "text/csv")}).status_code == 200
        [upload] = app.state.web_uploads.values()
        folder = upload.path.parent
        assert folder.exists()
        deadline = time.monotonic() + 20
        while folder.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not folder.exists(), "the unpublished upload is still on disk"
        # A second preview left open is removed when the API stops.
        app.state.upload_ttl_seconds = 3600.0
        assert client.post("/web/doctor/import", data={"kind": "bmi", "csrf": client.csrf("/web/doctor/import")},
                           files={"file": ("day.csv", content, "text/csv")}).status_code == 200
        [second] = app.state.web_uploads.values()
        client.close()
    assert not second.path.parent.exists()
