"""End to end: `dvc repro` in a temporary copy of the repo on a very small configuration."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SMALL = {  # a few seconds per stage: tiny shapes, few examples, one epoch
    "epochs": 1,
    "model": {"tiny": {"vocab_size": 512, "hidden_size": 32, "num_layers": 1, "num_heads": 2,
                       "num_kv_heads": 1, "intermediate_size": 64, "max_position_embeddings": 512}},
    "data": {"max_examples": 120},
    "train": {"max_length": 256, "logging_steps": 2},
    "eval": {"limit": 12, "max_prompt_tokens": 256, "max_new_tokens": 4, "splits": ["test", "validation"]},
}


def _merge(base: dict, over: dict) -> dict:
    return {k: _merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
            for k, v in {**base, **over}.items()}


def _run(cmd: list[str], cwd: Path) -> str:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def small_repo(tmp_path_factory) -> Path:
    """A git+DVC copy of the tracked files (no outputs, no lock) with the small params, after `dvc repro`."""
    dest = tmp_path_factory.mktemp("repo")
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split()
    for rel in files:
        if rel == "dvc.lock" or rel.startswith(("metrics/", "dvclive/")) or not (REPO / rel).is_file():
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dest / rel)
    params = _merge(yaml.safe_load((REPO / "params.yaml").read_text()), SMALL)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run(["git", "init", "-q"], dest)
    _run(["git", "add", "-A"], dest)
    _run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init"], dest)
    _run(["dvc", "repro"], dest)
    return dest


def _declared_outputs(repo: Path) -> list[Path]:
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc:
        return sorted({Path(out.fs_path) for stage in dvc.index.stages for out in stage.outs})


def test_every_declared_output_exists_and_parses(small_repo):
    outputs = _declared_outputs(small_repo)
    assert len(outputs) >= 20
    for path in outputs:
        assert path.exists(), f"declared output missing: {path}"
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".png":
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        elif path.is_dir() and (path / "config.json").is_file():
            from transformers import AutoModelForCausalLM

            assert AutoModelForCausalLM.from_pretrained(path).num_parameters() > 0


def test_metrics_cover_both_phases_tasks_and_splits(small_repo):
    for task, key in (("sst2", "accuracy"), ("squad_v2", "exact")):
        for phase in ("zeroshot", "finetuned"):
            metrics = json.loads((small_repo / f"metrics/{task}/{phase}.json").read_text())
            for split in ("test", "validation"):
                assert 0 <= metrics[split][key] <= (1 if task == "sst2" else 100)
            preds = json.loads((small_repo / f"predictions/{task}/{phase}/test.json").read_text())
            assert len(preds) == 12
        zs = json.loads((small_repo / f"predictions/{task}/zeroshot/test.json").read_text())
        ft = json.loads((small_repo / f"predictions/{task}/finetuned/test.json").read_text())
        assert [p["id"] for p in zs] == [p["id"] for p in ft], "both phases must score the same examples"
    counts = json.loads((small_repo / "metrics/sst2/params.json").read_text())
    assert counts["base"] == counts["finetuned"] and counts["base"]["total"] > 0
    summary = (small_repo / "metrics/summary.md").read_text()
    assert "| sst2 | test | accuracy |" in summary and "| squad_v2 | validation | exact |" in summary
    card = (small_repo / "publish/sst2/README.md").read_text()
    assert "model-index" in card and "zero-shot" in card


def test_second_repro_is_a_quick_no_op(small_repo):
    start = time.perf_counter()
    out = _run(["dvc", "repro"], small_repo)
    assert "Data and pipelines are up to date" in out
    assert time.perf_counter() - start < 30  # generous for slow CI; ~2 s on a quiet machine


def test_eval_param_change_rescores_without_retraining(small_repo):
    params = yaml.safe_load((small_repo / "params.yaml").read_text())
    original = (small_repo / "params.yaml").read_text()
    params["eval"]["limit"] = 6
    (small_repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        status = json.loads(_run(["dvc", "status", "--json"], small_repo).splitlines()[-1])
    finally:
        (small_repo / "params.yaml").write_text(original)
    changed = set(status)
    assert {"zeroshot_eval@sst2", "eval@sst2", "eval@squad_v2"} <= changed
    assert not any(s.startswith(("train@", "base_model", "prepare@", "split@")) for s in changed)


def test_rerun_with_the_same_seed_is_byte_identical(small_repo):
    files = ["models/base/model.safetensors", "models/base/tokenizer.json", "models/sst2/model.safetensors",
             "metrics/sst2/finetuned.json", "metrics/squad_v2/zeroshot.json", "predictions/sst2/finetuned/test.json"]
    before = {f: (small_repo / f).read_bytes() for f in files}
    _run(["dvc", "repro", "-f", "-s", "base_model"], small_repo)
    _run(["dvc", "repro", "-f", "-s", "train@sst2"], small_repo)
    _run(["dvc", "repro", "-f", "-s", "eval@sst2"], small_repo)
    _run(["dvc", "repro", "-f", "-s", "zeroshot_eval@squad_v2"], small_repo)
    for f in files:
        assert (small_repo / f).read_bytes() == before[f], f"{f} changed between two runs with the same seed"
    assert "Data and pipelines are up to date" in _run(["dvc", "repro"], small_repo)
