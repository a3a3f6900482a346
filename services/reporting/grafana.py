"""`schoolhealth grafana push`: dashboards, datasource and publication annotations to a running Grafana.

A thin adapter around grafana-client. Everything it reads from the database comes through the
Grafana role and the `reporting` schema (publications), exactly what Grafana itself may read.
Pushing is idempotent: dashboards are overwritten by uid, the folder and datasource are created
or updated, and a publication that already has its annotation is not annotated again.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from services.platform.settings import Settings
from services.reporting.dashboards import DATASOURCE_TYPE, DATASOURCE_UID, JSON_DIR, PUBLICATION_TAG

log = logging.getLogger(__name__)

FOLDER_UID = "schoolhealth"
FOLDER_TITLE = "schoolhealth"


class GrafanaPushError(RuntimeError):
    """Grafana refused or could not be reached; the message says which call and why."""


@dataclass(slots=True, kw_only=True)
class PushResult:
    dashboards: list[str] = field(default_factory=list)
    annotations_added: list[str] = field(default_factory=list)
    folder_created: bool = False
    datasource: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Publication:
    school_year: int
    revision: int
    published_at: datetime
    cells: int

    @property
    def tags(self) -> list[str]:
        return [PUBLICATION_TAG, f"school-year-{self.school_year}", f"revision-{self.revision}"]

    @property
    def text(self) -> str:
        return (f"School year {self.school_year}/{self.school_year + 1} indicators published "
                f"(revision {self.revision}, {self.cells} cells)")


def publications(settings: Settings) -> list[Publication]:
    """Every published revision, read as Grafana reads it."""
    with psycopg.connect(settings.pg_dsn("grafana")) as conn:
        rows = conn.execute("SELECT school_year, revision, published_at, cells FROM reporting.publications"
                            " ORDER BY school_year, revision").fetchall()
    return [Publication(school_year=r[0], revision=r[1], published_at=r[2], cells=r[3]) for r in rows]


def datasource_payload(settings: Settings, *, timescaledb: bool, postgres_version: int) -> dict[str, Any]:
    """The same datasource as `dashboards/provisioning/datasources`, for a Grafana without provisioning."""
    return {
        "name": "schoolhealth", "uid": DATASOURCE_UID, "type": DATASOURCE_TYPE, "access": "proxy",
        "url": f"{settings.pg_host}:{settings.pg_port}", "user": settings.pg_grafana_user,
        "jsonData": {"database": settings.pg_database, "sslmode": "disable", "postgresVersion": postgres_version,
                     "timescaledb": timescaledb, "maxOpenConns": 10},
        "secureJsonData": {"password": settings.pg_grafana_password.get_secret_value()},
    }


def _server(settings: Settings) -> tuple[bool, int]:
    """Whether TimescaleDB is installed (Grafana's toggle) and the server's major version as Grafana writes it."""
    with psycopg.connect(settings.pg_dsn("grafana")) as conn:
        row = conn.execute("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'),"
                           " current_setting('server_version_num')::integer").fetchone()
    assert row is not None
    return bool(row[0]), int(row[1]) // 10000 * 100


def push(settings: Settings, url: str, token: str | None = None, json_dir: Path = JSON_DIR) -> PushResult:
    """Publish the committed dashboards and one annotation per published revision to Grafana at `url`."""
    from grafana_client.api import GrafanaApi
    from grafana_client.client import GrafanaClientError, GrafanaException

    api = GrafanaApi.from_url(url, credential=token)
    result = PushResult()

    def call(what: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except GrafanaException as error:
            raise GrafanaPushError(f"{what}: HTTP {error.status_code}: {error.message}") from error
        except OSError as error:  # connection refused, DNS, TLS
            raise GrafanaPushError(f"{what}: {error}") from error

    def missing(what: str, function: Any, *args: Any) -> bool:
        try:
            call(what, function, *args)
        except GrafanaPushError as error:
            cause = error.__cause__
            if isinstance(cause, GrafanaClientError) and cause.status_code == 404:
                return True
            raise
        return False

    if missing("reading the folder", api.folder.get_folder, FOLDER_UID):
        call("creating the folder", api.folder.create_folder, FOLDER_TITLE, uid=FOLDER_UID)
        result.folder_created = True

    timescaledb, postgres_version = _server(settings)
    payload = datasource_payload(settings, timescaledb=timescaledb, postgres_version=postgres_version)
    if missing("reading the datasource", api.datasource.get_datasource_by_uid, DATASOURCE_UID):
        call("creating the datasource", api.datasource.create_datasource, payload)
        result.datasource = "created"
    else:
        call("updating the datasource", api.datasource.update_datasource_by_uid, DATASOURCE_UID, payload)
        result.datasource = "updated"

    for path in sorted(json_dir.glob("*.json")):
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        dashboard.pop("id", None)
        call(f"pushing {path.name}", api.dashboard.update_dashboard, {
            "dashboard": dashboard, "folderUid": FOLDER_UID, "overwrite": True,
            "message": "schoolhealth grafana push",
        })
        result.dashboards.append(str(dashboard["uid"]))

    for publication in publications(settings):
        existing = call("finding annotations", api.annotations.find_annotations, tags=publication.tags, limit=1)
        if existing:
            continue
        milliseconds = int(publication.published_at.timestamp() * 1000)
        call("annotating a publication", api.annotations.add_annotation,
             time_from=milliseconds, tags=publication.tags, text=publication.text)
        result.annotations_added.append(f"{publication.school_year} r{publication.revision}")
    log.info("pushed %d dashboards and %d annotations to Grafana", len(result.dashboards),
             len(result.annotations_added))
    return result
