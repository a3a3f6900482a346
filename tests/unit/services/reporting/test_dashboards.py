"""Dashboards as code: the committed JSON is what the builder makes, and the SDK's model accepts it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard

from services.platform.settings import PROJECT_ROOT
from services.reporting.dashboards import (
    DASHBOARDS,
    DATASOURCE_TYPE,
    DATASOURCE_UID,
    JSON_DIR,
    build_dashboards,
    dashboard_json,
    register_sql_query,
)

PANEL_TYPES = {"table", "timeseries", "stat", "bargauge"}


@pytest.fixture(autouse=True, scope="module")
def _sdk_runtime() -> None:
    register_default_plugins()
    register_sql_query()


@pytest.mark.parametrize("spec", DASHBOARDS, ids=lambda spec: spec.uid)
def test_committed_json_equals_the_builder_output(spec: object) -> None:
    path = JSON_DIR / f"{spec.uid}.json"  # type: ignore[attr-defined]
    assert path.exists(), f"run `schoolhealth dashboards build` to write {path}"
    assert path.read_text(encoding="utf-8") == dashboard_json(spec)  # type: ignore[arg-type]


def test_no_stray_dashboards_are_committed(tmp_path: Path) -> None:
    built = {p.name for p in build_dashboards(tmp_path)}
    assert {p.name for p in JSON_DIR.glob("*.json")} == built
    assert len(built) == 5


def assert_contained(expected: object, actual: object, where: str = "$") -> None:
    if isinstance(expected, dict):
        assert isinstance(actual, dict), where
        for key, value in expected.items():
            assert key in actual, f"{where}.{key} dropped by the SDK model"
            assert_contained(value, actual[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), where
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            assert_contained(e, a, f"{where}[{i}]")
    else:
        assert expected == actual, where


@pytest.mark.parametrize("path", sorted(JSON_DIR.glob("*.json")), ids=lambda p: p.stem)
def test_dashboard_json_is_valid_against_the_sdk_model(path: Path) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    model = Dashboard.from_json(data)
    # The model keeps everything (it may add the plugins' defaults): no field is unknown to it.
    assert_contained(data, json.loads(json.dumps(model, cls=JSONEncoder)))
    assert model.uid and model.title
    assert model.panels
    ids = [panel.id_val for panel in model.panels]
    assert len(ids) == len(set(ids))
    for panel in model.panels:
        assert panel.type_val in PANEL_TYPES
        assert panel.datasource.uid == DATASOURCE_UID  # type: ignore[union-attr]
        assert panel.targets, panel.title  # type: ignore[union-attr]
        for target in panel.targets:  # type: ignore[union-attr]
            body = target.to_json()  # type: ignore[union-attr]
            assert body["datasource"] == {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID}
            assert "reporting." in str(body["rawSql"])
            for schema in ("archive.", "roster.", "ops.", "metrics.", "alerts."):
                assert schema not in str(body["rawSql"])
        grid = panel.grid_pos
        assert grid is not None and grid.x + grid.w <= 24


def test_provisioning_points_at_the_committed_json_and_the_datasource() -> None:
    provisioning = PROJECT_ROOT / "dashboards" / "provisioning"
    datasources = yaml.safe_load((provisioning / "datasources" / "schoolhealth.yaml").read_text())
    (source,) = datasources["datasources"]
    assert (source["uid"], source["type"]) == (DATASOURCE_UID, DATASOURCE_TYPE)
    assert "GRAFANA" in source["user"]
    providers = yaml.safe_load(next((provisioning / "dashboards").glob("*.y*ml")).read_text())
    path = providers["providers"][0]["options"]["path"]
    compose = (PROJECT_ROOT / "docker-compose.yml").read_text()
    assert f"./dashboards/json:{path}" in compose
