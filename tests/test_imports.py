"""The import graph: cheap entry points load no torch, and no import cycle exists, lazy imports included."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from import_graph import cycles, import_graph
from repo_helpers import env

REPO = Path(__file__).resolve().parents[1]


def test_importing_stage_and_cli_loads_no_torch():
    """Every stage imports tuneval.stage first: an error in params.yaml must not wait for torch to load."""
    code = "import sys, tuneval.stage, tuneval.cli; print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env(), capture_output=True, text=True,
                          timeout=120, check=True)
    assert proc.stdout.strip() == "[]"


def test_import_graph_has_no_cycles():
    """No import cycle among tuneval modules.

    Policy, with no exceptions: the graph of every import, module-level and lazy (inside a function) alike, is
    acyclic. A lazy import keeps torch out of cheap entry points; it is not a licence for a cycle, which always
    means a helper in the wrong module (as `redact` was in stage.py, or TrainJob in the trainer the launcher had
    to import back). The launcher and the ranks it starts are separate modules (train/launch.py, train/rank.py)
    for this reason.
    """
    edges = import_graph()
    assert len(edges) > 20, "the graph builder found almost no imports: it is broken, not the code clean"
    assert any(not e.module_level for e in edges), "no lazy import found: the builder no longer sees them"
    assert cycles(edges) == []


def test_cycle_finder_sees_a_cycle_and_lazy_edges(tmp_path):
    """The control: a planted module-level cycle, and a lazy import marked as such."""
    pkg = tmp_path / "tuneval"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from tuneval import b\n")
    (pkg / "b.py").write_text("import tuneval.c\n")
    (pkg / "c.py").write_text("from tuneval.a import x\n\ndef f():\n    from tuneval import b\n")
    edges = import_graph(tmp_path)
    assert cycles(edges) == [["tuneval.a", "tuneval.b", "tuneval.c"]]
    assert [(e.source, e.target) for e in edges if not e.module_level] == [("tuneval.c", "tuneval.b")]
