#!/usr/bin/env python3
"""Fail when the committed dvc.lock is stale: it no longer describes a run of the committed code and params.

    python scripts/check_lock.py        (from the repository root; .ci/run calls it before the tests)

Runs `dvc status --json` and reports, per stage, every changed dep that git tracks (source code, task YAMLs, the
bundled sample: "modified", or "new"/"deleted" when dvc.yaml and dvc.lock disagree on the deps), every changed
param and a changed command. Not counted: outputs, and deps git does not track (DVC-managed data such as
data/split or models/base are absent from a clean clone until `dvc pull`/`dvc repro`, and that is no staleness).
Exit 0 when nothing counts, 1 with one line per stale stage, 2 when `dvc status` itself fails.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable


def dvc_status() -> dict:
    """`dvc status --json` of the current directory's repository."""
    proc = subprocess.run([sys.executable, "-m", "dvc", "status", "--json"], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"dvc status failed ({proc.returncode}):\n{proc.stderr.strip()}")
    lines = proc.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else {}  # DVC may print notices before the JSON line


def git_tracked() -> set[str]:
    """Every path git tracks here, with every directory above one (a directory dep counts when it holds one)."""
    files = subprocess.run(["git", "ls-files", "-z"], capture_output=True, text=True, check=True).stdout.split("\0")
    tracked = set()
    for path in filter(None, files):
        parts = path.split("/")
        tracked.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    return tracked


def pipeline_outputs(lock_path: str = "dvc.lock") -> set[str]:
    """Every output path dvc.lock records (data the pipeline makes, absent from a clean clone)."""
    import yaml

    with open(lock_path, encoding="utf-8") as f:
        lock = yaml.safe_load(f) or {}
    return {out["path"].rstrip("/") for stage in lock.get("stages", {}).values() for out in stage.get("outs", [])}


def counts_as_source(path: str, tracked: set[str], outputs: set[str]) -> bool:
    """A dep git tracks that holds no pipeline output. A directory such as data/split holds DVC's .gitignore
    (tracked) beside the outputs of other stages: that is pipeline data, never source."""
    path = path.rstrip("/")
    return path in tracked and not any(out == path or out.startswith(path + "/") for out in outputs)


def stale_reasons(items: Iterable, tracked: set[str], outputs: frozenset[str] = frozenset()) -> list[str]:
    """What makes one stage's lock entry stale: 'file (how)', 'param <key> (how)', 'command changed'."""
    reasons = []
    for item in items if isinstance(items, list) else []:
        if item == "changed command":
            reasons.append("command changed")
        if not isinstance(item, dict):
            continue  # "always changed" (no deps) and other plain strings: nothing committed to compare
        # DVC 3 lists params among the deps as {params file: {key: how}}; older versions as "changed params"
        changed = {**item.get("changed deps", {}), **item.get("changed params", {})}
        for path, how in changed.items():
            if isinstance(how, dict):  # params count whatever git thinks of the file
                reasons += [f"param {key} in {path} ({change})" for key, change in how.items()]
            elif counts_as_source(path, tracked, outputs):
                reasons.append(f"{path} ({how})")
    return reasons


def stale_stages(status: dict, tracked: set[str], outputs: frozenset[str] = frozenset()) -> dict[str, list[str]]:
    """stage -> reasons, only for stages with at least one."""
    return {stage: reasons for stage, items in status.items()
            if (reasons := stale_reasons(items, tracked, outputs))}


def main() -> int:
    try:
        status = dvc_status()
    except (RuntimeError, json.JSONDecodeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    stale = stale_stages(status, git_tracked(), frozenset(pipeline_outputs()))
    if not stale:
        print("dvc.lock is up to date with the committed code and params")
        return 0
    print("dvc.lock is stale: these stages' code, params or command changed since the run it records. Rerun them "
          "(dvc repro) and commit dvc.lock with the outputs it records:", file=sys.stderr)
    for stage, reasons in stale.items():
        print(f"  {stage}: {', '.join(reasons)}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
