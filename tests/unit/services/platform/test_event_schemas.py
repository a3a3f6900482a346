"""The JSON Schema files of the event contracts (`services.platform.event_schemas`)."""

from __future__ import annotations

from pathlib import Path

from services.platform import event_schemas
from services.platform.event_schemas import json_schemas, schema_files, stale_schema_files, write_schemas
from tests.unit.models.test_contracts import VALID


def test_schema_files_are_up_to_date() -> None:
    directory = event_schemas.SCHEMAS_DIRECTORY
    assert directory.name == "schemas" and directory.parent.name == "models"
    committed = {path.name: path.read_text(encoding="utf-8") for path in directory.glob("*.json")}
    assert committed == schema_files(), "run: schoolhealth schemas write"
    assert not stale_schema_files()


def test_one_schema_per_family_and_the_batch() -> None:
    schemas = json_schemas()
    assert set(schemas) == {f"{family}.v1" for family in (*VALID, "batch")}
    for name, schema in schemas.items():
        family = name.removesuffix(".v1")
        assert "schema" in schema["required"]
        assert schema["additionalProperties"] is False
        schema_ref = schema["properties"]["schema"]["$ref"].rsplit("/", 1)[-1]
        assert schema["$defs"][schema_ref]["properties"]["family"]["const"] == family
    # Height and weight may each be null or absent (a partial measurement), within bounds when given.
    height = schemas["bmi-screening.v1"]["properties"]["height_cm"]
    assert {"type": "null"} in height["anyOf"]
    assert [option["maximum"] for option in height["anyOf"] if option.get("type") == "number"] == [230]
    assert "height_cm" not in schemas["bmi-screening.v1"]["required"]
    assert "oedema" in schemas["bmi-screening.v1"]["properties"]
    assert schemas["bmi-screening.v1"]["properties"]["student_key"]["pattern"] == "^[0-9a-f]{64}$"


def test_write_and_check_schemas(tmp_path: Path) -> None:
    (tmp_path / "stale.json").write_text("{}", encoding="utf-8")
    assert stale_schema_files(tmp_path)
    written = write_schemas(tmp_path)
    assert sorted(path.name for path in tmp_path.glob("*.json")) == sorted(p.name for p in written)
    assert {path.name: path.read_text(encoding="utf-8") for path in written} == schema_files()
    assert not stale_schema_files(tmp_path)
