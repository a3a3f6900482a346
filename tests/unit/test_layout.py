"""The test folders mirror the code: each folder under `tests/<kind>/services/` names a package of
`services/`, `tests/unit/models/` and `tests/unit/streams/` name theirs, and every folder is a package
(two test modules of one name in different folders would otherwise collide)."""

from __future__ import annotations

from pathlib import Path

from tests.paths import ROOT

TESTS = ROOT / "tests"


def _folders(kind: str) -> list[Path]:
    return sorted(p for p in (TESTS / kind).rglob("*") if p.is_dir() and p.name != "__pycache__")


def test_every_test_folder_mirrors_a_package_of_the_code() -> None:
    orphans = []
    for kind in ("unit", "integration"):
        for folder in _folders(kind):
            mirrored = ROOT / folder.relative_to(TESTS / kind)
            if not (mirrored / "__init__.py").is_file():
                orphans.append(folder.relative_to(ROOT).as_posix())
    assert orphans == [], f"test folders that mirror no package of the code: {orphans}"


def test_every_test_folder_is_a_package() -> None:
    missing = [folder.relative_to(ROOT).as_posix() for kind in ("unit", "integration", "e2e", "faults")
               for folder in [TESTS / kind, *_folders(kind)] if not (folder / "__init__.py").is_file()]
    assert missing == []
