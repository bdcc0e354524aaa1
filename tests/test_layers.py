"""Data flows left to right: an area never imports an area to its right (DESIGN.md, STYLE.md §3)."""

import ast
import importlib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "opencohort"
# Rank of each area along the data flow; an area may import only areas of lower or equal rank.
RANK = {
    "vocab": 0,
    "registry": 1,
    "ingest": 2,
    "curate": 3,
    "genomics": 3,
    "release": 4,
    "analysis": 5,
    "workbench": 5,
    "browser": 5,
    "participant": 5,
    "web": 6,
}
# The synthetic program stands outside the flow: it may use vocab; no area may import it.
SYNTH_MAY_IMPORT = {"vocab"}
GPL_MODULES = {"msprime", "stdpopsim", "tskit"}


def _areas() -> list[str]:
    return sorted(p.name for p in SRC.iterdir() if (p / "__init__.py").exists())


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _area_imports(area: str) -> set[str]:
    found: set[str] = set()
    for path in (SRC / area).rglob("*.py"):
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] == "opencohort" and len(parts) > 1 and parts[1] in RANK | {"synth": 0}:
                found.add(parts[1])
    found.discard(area)
    return found


@pytest.mark.parametrize("area", _areas())
def test_area__imports_only_leftwards(area: str) -> None:
    used = _area_imports(area)
    if area == "synth":
        assert used <= SYNTH_MAY_IMPORT, f"synth imports {used - SYNTH_MAY_IMPORT}"
        return
    assert "synth" not in used, f"{area} imports the synthetic generator"
    wrong = {other for other in used if RANK[other] > RANK[area]}
    assert not wrong, f"{area} imports areas to its right: {sorted(wrong)}"


def test_gpl_simulators__only_in_synth() -> None:
    offenders = [
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if "synth" not in path.relative_to(SRC).parts
        and {n.split(".")[0] for n in _imports(path)} & GPL_MODULES
    ]
    assert not offenders, f"msprime/stdpopsim/tskit imported outside synth/: {offenders}"


@pytest.mark.parametrize("area", _areas())
def test_area__all_matches_public_names(area: str) -> None:
    module = importlib.import_module(f"opencohort.{area}")
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"opencohort.{area} has no __all__"
    assert sorted(exported) == sorted(set(exported)), "duplicate names in __all__"
    for name in exported:
        assert hasattr(module, name), f"opencohort.{area}.__all__ names missing {name}"
    namespace: dict = {}
    exec(f"from opencohort.{area} import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(exported)
