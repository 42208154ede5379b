"""dvc.yaml's deps are complete by construction: every stage depends on every source file its script can run.

For each stage the script (`stages/<x>.py` in its cmd) is read with `ast`, and the transitive closure of the
`tuneval.*` modules it imports is taken, module-level and function-level imports alike (a lazy import runs during
the stage just the same), except that from a module of several stage functions only the called function's imports
count (see import_graph.script_closure). Each module's file must be a dep of the stage (or lie under a directory
dep), and no stage lists code beyond that closure. A stage whose closure contains `tuneval.tasks` reads task
definitions, so it must depend on its task's YAML (`src/tuneval/tasks/${item}.yaml`) or, without a task, on the
whole `src/tuneval/tasks` directory.
This over-approximates (a stage imports more than each run executes), which can only cost a rerun, never a stale
result. The one exemption, the top package's `__init__.py`, is checked to hold nothing but metadata.
"""

from __future__ import annotations

import ast
import copy
import re
from pathlib import Path

import pytest
import yaml
from import_graph import SRC, TOP_PACKAGE, module_file, script_closure

from tuneval.tasks import TASK_NAMES

REPO = Path(__file__).resolve().parents[1]
SCRIPT = re.compile(r"\bstages/[\w-]+\.py\b")
TASKS_PACKAGE = f"{TOP_PACKAGE}.tasks"


def expand(dvc_yaml: dict) -> dict[str, dict]:
    """stage name -> definition, `foreach` stages expanded per defined task (`name@task`, ${item} filled in)."""
    stages = {}
    for name, spec in dvc_yaml["stages"].items():
        if "foreach" in spec:
            for task in TASK_NAMES:
                text = yaml.safe_dump(spec["do"]).replace("${item}", task)
                stages[f"{name}@{task}"] = {**yaml.safe_load(text), "_task": task}
        else:
            stages[name] = spec
    return stages


def dep_paths(spec: dict) -> list[str]:
    """A stage's deps as written (dvc.yaml allows plain strings or single-key mappings)."""
    return [next(iter(d)) if isinstance(d, dict) else d for d in spec.get("deps", [])]


def required_deps(spec: dict, repo: Path = REPO, src: Path = SRC) -> list[str]:
    """Every file the stage's script can import (relative to `repo`), plus the task definitions it reads."""
    (script,) = set(SCRIPT.findall(spec["cmd"]))
    modules = script_closure(repo / script, src)
    files = [script] + sorted(module_file(m, src).relative_to(repo).as_posix() for m in modules)
    if TASKS_PACKAGE in modules:
        tasks_dir = module_file(TASKS_PACKAGE, src).parent.relative_to(repo).as_posix()
        if "_task" in spec:
            files.append(f"{tasks_dir}/{spec['_task']}.yaml")
        else:  # the directory covers its modules too: one dep, not a dep and its parent
            files = [f for f in files if not f.startswith(f"{tasks_dir}/")] + [tasks_dir]
    return files


def missing_deps(dvc_yaml: dict, repo: Path = REPO, src: Path = SRC) -> dict[str, list[str]]:
    """stage -> required files that no dep (a file, or a directory above it) covers; {} = all complete."""
    missing = {}
    for name, spec in expand(dvc_yaml).items():
        deps = [d.rstrip("/") for d in dep_paths(spec)]
        lacking = [f for f in required_deps(spec, repo, src)
                   if not any(f == d or f.startswith(f"{d}/") for d in deps)]
        if lacking:
            missing[name] = lacking
    return missing


@pytest.fixture(scope="module")
def dvc_yaml() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())


def test_every_stage_depends_on_every_module_it_imports(dvc_yaml):
    missing = missing_deps(dvc_yaml)
    assert missing == {}, "add these deps in dvc.yaml (python scripts/sync_dvc_deps.py):\n" + "\n".join(
        f"  {stage}: {', '.join(files)}" for stage, files in missing.items())


def test_no_stage_depends_on_code_it_does_not_run(dvc_yaml):
    """The other direction: a code dep no import reaches would rerun the stage for edits it never runs."""
    extra = {}
    for name, spec in expand(dvc_yaml).items():
        required = required_deps(spec)
        code = [d for d in dep_paths(spec) if d.startswith(("src/", "stages/"))]
        unneeded = [d for d in code if not any(r == d or r.startswith(f"{d}/") for r in required)]
        if unneeded:
            extra[name] = unneeded
    assert extra == {}, "remove these deps from dvc.yaml (python scripts/sync_dvc_deps.py):\n" + "\n".join(
        f"  {stage}: {', '.join(files)}" for stage, files in extra.items())


def test_every_stage_runs_a_stage_script(dvc_yaml):
    for name, spec in expand(dvc_yaml).items():
        assert len(set(SCRIPT.findall(spec["cmd"]))) == 1, f"{name}: cmd runs no stages/<x>.py: {spec['cmd']}"


def test_the_checker_reports_a_removed_module(dvc_yaml):
    """The control: drop one module (imported only lazily, deep in the closure) and one task YAML from deps."""
    broken = copy.deepcopy(dvc_yaml)
    train = broken["stages"]["train"]["do"]
    train["deps"].remove("src/tuneval/models/loading.py")
    train["deps"].remove("src/tuneval/tasks/${item}.yaml")
    before, after = missing_deps(dvc_yaml), missing_deps(broken)  # `before`: {} unless dvc.yaml is behind the code
    added = {stage: sorted(set(files) - set(before.get(stage, []))) for stage, files in after.items()}
    assert {stage: files for stage, files in added.items() if files} == {
        f"train@{task}": ["src/tuneval/models/loading.py", f"src/tuneval/tasks/{task}.yaml"] for task in TASK_NAMES}


def test_the_checker_follows_lazy_and_package_imports(tmp_path):
    """A script importing a package lazily through `from pkg import mod` needs the package's __init__ and mod."""
    src = tmp_path / "src"
    (src / "tuneval" / "tasks").mkdir(parents=True)
    (src / "tuneval" / "__init__.py").write_text("")
    (src / "tuneval" / "tasks" / "__init__.py").write_text("")
    (src / "tuneval" / "a.py").write_text("def f():\n    from tuneval.tasks import b\n")
    (src / "tuneval" / "tasks" / "b.py").write_text("import tuneval.c\n")
    (src / "tuneval" / "c.py").write_text("")
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages" / "s.py").write_text("from tuneval import a\n")
    spec = {"cmd": "python stages/s.py --task sst2", "_task": "sst2"}
    assert required_deps(spec, tmp_path, src) == [
        "stages/s.py", "src/tuneval/a.py", "src/tuneval/c.py", "src/tuneval/tasks/__init__.py",
        "src/tuneval/tasks/b.py", "src/tuneval/tasks/sst2.yaml"]
    complete = {"stages": {"s": {"cmd": spec["cmd"], "deps": ["stages/s.py", "src/tuneval"]}}}
    assert missing_deps(complete, tmp_path, src) == {}  # a directory dep covers what lies under it


def test_only_the_called_pipeline_function_counts(tmp_path):
    """From a module of stage functions, a script needs that module's top-level imports plus what the function it
    calls (and the module's functions that one calls) imports lazily; a local variable named like another stage
    function (`train, test = ...`) does not pull that function in. Another module importing the same module
    brings back all of it."""
    src = tmp_path / "src"
    (src / "tuneval").mkdir(parents=True)
    for name in ("__init__", "base", "data", "training", "helper", "report"):
        (src / "tuneval" / f"{name}.py").write_text("")
    (src / "tuneval" / "pipeline.py").write_text(
        "from tuneval import base\n\n"
        "def split():\n    from tuneval import data\n    train, test = data, _helper()\n\n"
        "def train():\n    from tuneval import training\n\n"
        "def _helper():\n    from tuneval import helper\n")
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages" / "split.py").write_text("from tuneval.pipeline import split\n")
    spec = {"cmd": "python stages/split.py"}
    assert required_deps(spec, tmp_path, src) == [
        "stages/split.py", "src/tuneval/base.py", "src/tuneval/data.py", "src/tuneval/helper.py",
        "src/tuneval/pipeline.py"]
    (src / "tuneval" / "report.py").write_text("def f():\n    from tuneval import pipeline\n")
    (tmp_path / "stages" / "split.py").write_text("from tuneval.pipeline import split\nimport tuneval.report\n")
    assert "src/tuneval/training.py" in required_deps(spec, tmp_path, src)


def test_top_package_init_holds_only_metadata():
    """`src/tuneval/__init__.py` runs before every module but is no stage's dep: it must not hold code."""
    tree = ast.parse((SRC / TOP_PACKAGE / "__init__.py").read_text())
    for node in tree.body:
        is_docstring = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        is_constant = isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        assert is_docstring or is_constant, f"line {node.lineno}: only a docstring and constants belong here"


if __name__ == "__main__":  # `python tests/test_dvc_deps.py`: what dvc.yaml lacks, stage by stage
    for stage_name, files in missing_deps(yaml.safe_load((REPO / "dvc.yaml").read_text())).items():
        print(f"{stage_name}: {' '.join(files)}")
