"""The JSON Schema files of the event contracts, for consumers outside Python.

`schoolhealth schemas write` regenerates `models/schemas/*.json` from the pydantic models in
`models.contracts`; `schoolhealth schemas check` (and a unit test) fails when a committed file is stale.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from models import schemas as _schemas_package
from models.contracts import EVENT_MODELS, Batch, EventBase

#: Where the files live: a package of `models`, so they ship with the wheel.
SCHEMAS_DIRECTORY: Final = Path(_schemas_package.__file__ or "").resolve().parent

_JSON_SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"


def json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema of each contract, keyed ``"<family>.v<version>"`` (the batch included)."""
    schemas: dict[str, dict[str, Any]] = {}
    models: tuple[type[EventBase] | type[Batch], ...] = (*EVENT_MODELS, Batch)
    for model in models:
        schema = model.model_json_schema(by_alias=True, mode="validation")
        schemas[f"{model.FAMILY}.v{model.VERSION}"] = {"$schema": _JSON_SCHEMA_DIALECT, **schema}
    return schemas


def _schema_text(schema: Mapping[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def schema_files() -> dict[str, str]:
    """File name to file text of every generated schema (what ``write_schemas`` writes)."""
    return {f"{name}.json": _schema_text(schema) for name, schema in json_schemas().items()}


def write_schemas(directory: Path = SCHEMAS_DIRECTORY) -> list[Path]:
    """Regenerate the JSON Schema files in ``directory``, removing stale ``*.json`` files."""
    directory.mkdir(parents=True, exist_ok=True)
    files = schema_files()
    for stale in directory.glob("*.json"):
        if stale.name not in files:
            stale.unlink()
    written = []
    for name, text in sorted(files.items()):
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale_schema_files(directory: Path = SCHEMAS_DIRECTORY) -> bool:
    """Whether the files in ``directory`` differ from what ``write_schemas`` would write."""
    actual = {path.name: path.read_text(encoding="utf-8") for path in directory.glob("*.json")}
    return actual != schema_files()
