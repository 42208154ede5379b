"""Rewrite the code deps of every stage in dvc.yaml from the import graph (what tests/test_dvc_deps.py checks).

    python scripts/sync_dvc_deps.py          # rewrite dvc.yaml in place; prints the stages whose deps changed

Only dep lines naming code (`stages/...`, `src/...`) are replaced; data deps, params, outs and comments stay. Run it
after adding an import to a module a stage runs; the test names the stage and file when dvc.yaml is behind.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the import-graph reader the dependency test uses: one implementation
from test_dvc_deps import required_deps  # noqa: E402

STAGE = re.compile(r"^  (\w+):\s*$")
CODE_DEP = re.compile(r"^\s+- (stages|src)/\S+\s*(#.*)?$")


def code_deps(name: str, spec: dict) -> list[str]:
    """The stage's required code deps, with `${item}` where a foreach stage names its task."""
    if "foreach" not in spec:
        return required_deps(spec)
    task = "sst2"  # any task: the modules a stage imports do not depend on which task it runs
    expanded = {**yaml.safe_load(yaml.safe_dump(spec["do"]).replace("${item}", task)), "_task": task}
    return [dep.replace(f"/{task}.yaml", "/${item}.yaml") for dep in required_deps(expanded)]


def sync(text: str) -> tuple[str, list[str]]:
    stages = yaml.safe_load(text)["stages"]
    out, changed, stage, before = [], [], None, {}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if match := STAGE.match(line):
            stage = match.group(1) if match.group(1) in stages else stage
        if line.strip() == "deps:" and stage in stages:
            out.append(line)
            indent = " " * (len(line) - len(line.lstrip()) + 2)
            old = []
            j = i + 1
            while j < len(lines) and CODE_DEP.match(lines[j]):
                old.append(lines[j].split("- ", 1)[1].split("#")[0].strip())
                j += 1
            new = code_deps(stage, stages[stage])
            before[stage] = (old, new, j)
            out += [f"{indent}- {dep}" for dep in new]
            if old != new:
                changed.append(stage)
            continue
        if stage in before and i < before[stage][2] and CODE_DEP.match(line):
            continue  # an old code dep, replaced above
        out.append(line)
    return "\n".join(out) + "\n", changed


def main() -> None:
    path = REPO / "dvc.yaml"
    text, changed = sync(path.read_text())
    path.write_text(text)
    print("code deps rewritten: " + (", ".join(changed) if changed else "none (dvc.yaml was up to date)"))


if __name__ == "__main__":
    main()
