"""pyproject.toml's runtime dependencies are exactly what the code needs: every declared distribution is imported
by src/, stages/ or scripts/ (or is listed below with what uses it without an import), and every third-party
module that src/ or stages/ imports comes from a declared distribution, not from whatever happens to pull it in."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
USED_WITHOUT_IMPORT = {  # declared distribution -> what uses it
    "dvc": "the pipeline itself (dvc.yaml, `dvc repro` / `dvc exp run`) and scripts/check_lock.py's `dvc status`",
    "dvc-s3": "DVC's S3 remote plugin (README: Remotes; tests/test_remote.py)",
    "gguf": "transformers reads GGUF checkpoints through it (models/gguf.py: from_pretrained(gguf_file=...))",
}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_modules(*folders: str) -> dict[str, set[str]]:
    """Top-level module -> files importing it (module-level and function-level imports), tuneval and the standard
    library left out."""
    found: dict[str, set[str]] = {}
    for folder in folders:
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top != "tuneval" and top not in sys.stdlib_module_names:
                        found.setdefault(top, set()).add(str(path.relative_to(REPO)))
    return found


@pytest.fixture(scope="module")
def declared() -> set[str]:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return {canonical(Requirement(d).name) for d in project["dependencies"]}


def distributions_of(module: str) -> set[str]:
    return {canonical(d) for d in importlib.metadata.packages_distributions().get(module, [])}


def test_every_declared_dependency_is_used(declared):
    modules = imported_modules("src", "stages", "scripts")
    used = set().union(*(distributions_of(m) for m in modules))
    unused = sorted(declared - used - set(USED_WITHOUT_IMPORT))
    assert not unused, f"declared in pyproject.toml but never imported (and not in USED_WITHOUT_IMPORT): {unused}"
    assert set(USED_WITHOUT_IMPORT) <= declared, "USED_WITHOUT_IMPORT names a distribution no longer declared"


def test_every_imported_third_party_module_is_declared(declared):
    modules = imported_modules("src", "stages")
    undeclared = {m: sorted(files) for m, files in modules.items() if not distributions_of(m) & declared}
    assert not undeclared, f"imported but not declared in pyproject.toml's dependencies: {undeclared}"
