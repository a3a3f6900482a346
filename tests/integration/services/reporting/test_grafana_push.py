"""`grafana push` against a FAKE of Grafana's HTTP API (Grafana cannot run on this machine).

FAKE GRAFANA: `FakeGrafana` below is a tiny HTTP server on 127.0.0.1 that implements only the
endpoints `services.reporting.grafana.push` calls (folders, datasources by uid, dashboards/db, annotations),
records every request, and keeps just enough state for a second push to see the first. It is
not Grafana: it checks what we send, not how Grafana renders it. The database is the real one.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from services.devtools.seed import seed_archive
from services.platform.settings import Settings
from services.reporting.dashboards import DATASOURCE_UID, JSON_DIR, PUBLICATION_TAG
from services.reporting.grafana import FOLDER_UID, GrafanaPushError, push
from services.reporting.metrics import publish_year

pytestmark = pytest.mark.integration
TOKEN = "fake-grafana-token"


class FakeGrafana(ThreadingHTTPServer):
    """FAKE of Grafana's HTTP API (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict[str, Any]] = []
        self.folders: dict[str, dict[str, Any]] = {}
        self.datasources: dict[str, dict[str, Any]] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}
        self.annotations: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: FakeGrafana

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        return

    def _reply(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        parsed = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body: Any = json.loads(self.rfile.read(length)) if length else None
        self.server.requests.append({"method": method, "path": parsed.path, "query": parse_qs(parsed.query),
                                     "body": body, "authorization": self.headers.get("Authorization")})
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._reply(401, {"message": "Unauthorized"})
            return
        path, state = parsed.path, self.server
        if method == "GET" and path.startswith("/api/folders/"):
            uid = path.rsplit("/", 1)[1]
            self._reply(200, state.folders[uid]) if uid in state.folders else self._reply(404, {"message": "not found"})
        elif method == "POST" and path == "/api/folders":
            state.folders[body["uid"]] = body
            self._reply(200, {"uid": body["uid"], "title": body["title"]})
        elif method == "GET" and path.startswith("/api/datasources/uid/"):
            uid = path.rsplit("/", 1)[1]
            found = state.datasources.get(uid)
            self._reply(200, found) if found else self._reply(404, {"message": "Data source not found"})
        elif method in ("POST", "PUT") and path.startswith("/api/datasources"):
            state.datasources[body["uid"]] = body
            self._reply(200, {"message": "Datasource saved", "datasource": body})
        elif method == "POST" and path == "/api/dashboards/db":
            if body["dashboard"]["uid"] in state.dashboards and not body.get("overwrite"):
                self._reply(412, {"message": "version-mismatch"})
                return
            state.dashboards[body["dashboard"]["uid"]] = body
            self._reply(200, {"status": "success", "uid": body["dashboard"]["uid"], "version": 1})
        elif method == "GET" and path == "/api/annotations":
            tags = set(parse_qs(parsed.query).get("tags", []))
            self._reply(200, [a for a in state.annotations if tags <= set(a["tags"])])
        elif method == "POST" and path == "/api/annotations":
            state.annotations.append({**body, "id": len(state.annotations) + 1})
            self._reply(200, {"message": "Annotation added", "id": len(state.annotations)})
        else:
            self._reply(404, {"message": f"fake Grafana does not implement {method} {path}"})

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")


@pytest.fixture
def fake_grafana() -> Iterator[FakeGrafana]:
    server = FakeGrafana()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_push_sends_dashboards_datasource_and_one_annotation_per_publication(
        isolated: Settings, backend: str, fake_grafana: FakeGrafana) -> None:
    seed_archive(isolated, students=400, school_years=(2024, 2025))
    assert publish_year(isolated, 2025) == 1

    first = push(isolated, fake_grafana.url, TOKEN)
    assert first.folder_created and first.datasource == "created"
    committed = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in JSON_DIR.glob("*.json")}
    assert sorted(first.dashboards) == sorted(committed)
    for uid, dashboard in committed.items():
        sent = fake_grafana.dashboards[uid]
        assert sent["dashboard"] == dashboard
        assert sent["folderUid"] == FOLDER_UID and sent["overwrite"] is True
    datasource = fake_grafana.datasources[DATASOURCE_UID]
    assert datasource["user"] == isolated.pg_grafana_user
    assert datasource["jsonData"]["database"] == isolated.pg_database
    assert datasource["jsonData"]["timescaledb"] is (backend == "timescaledb")
    assert datasource["jsonData"]["postgresVersion"] >= 1200
    (annotation,) = fake_grafana.annotations
    assert set(annotation["tags"]) == {PUBLICATION_TAG, "school-year-2025", "revision-1"}
    assert "2025" in annotation["text"] and isinstance(annotation["time"], int)
    assert all(r["authorization"] == f"Bearer {TOKEN}" for r in fake_grafana.requests)

    # Again, after a second publication: dashboards overwritten, only the new revision annotated.
    assert publish_year(isolated, 2025) == 2
    second = push(isolated, fake_grafana.url, TOKEN)
    assert not second.folder_created and second.datasource == "updated"
    assert second.annotations_added == ["2025 r2"]
    assert len(fake_grafana.annotations) == 2
    posted = [r for r in fake_grafana.requests if r["path"] == "/api/dashboards/db"]
    assert len(posted) == 2 * len(committed)


def test_push_reports_grafana_refusals(isolated: Settings, fake_grafana: FakeGrafana) -> None:
    with pytest.raises(GrafanaPushError, match="401"):
        push(isolated, fake_grafana.url, "wrong-token")
    with pytest.raises(GrafanaPushError, match="folder"):
        push(isolated, "http://127.0.0.1:9", TOKEN)
