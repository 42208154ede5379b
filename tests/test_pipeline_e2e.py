"""End to end: `dvc repro` in a temporary copy of the repo on a very small configuration
(repo_helpers.SMALL: tiny shapes, few examples, one epoch, both eval splits). The pipeline runs once per
test session (repo_helpers.built_small_repo); this module works on its own copy of the result."""

import json
import time
from pathlib import Path

import pytest
import yaml
from repo_helpers import copy_built, run


@pytest.fixture(scope="module")
def small_repo(tmp_path_factory) -> Path:
    """This module's own copy of the session's small built repo (`dvc repro` done, results committed)."""
    return copy_built(tmp_path_factory, tmp_path_factory.mktemp("e2e") / "repo")


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
            assert set(metrics) == {"test", "validation", "run"}  # per-split maps + one entry of run-level facts
            for split in ("test", "validation"):
                assert 0 <= metrics[split][key] <= (1 if task == "sst2" else 100)
            run_facts = metrics["run"]
            assert set(run_facts) == {"num_fewshot", "prompt_sha", "dtype", "chat_template", "route"}
            assert run_facts["num_fewshot"] == 0 and run_facts["dtype"] in ("float32", "bfloat16", "float16")
            assert run_facts["chat_template"] is False and len(run_facts["prompt_sha"]) == 12
            record = json.loads((small_repo / f"predictions/{task}/{phase}/run.json").read_text())
            assert record["prompt_sha"] == run_facts["prompt_sha"] and "{" in record["prompt_template"]
            assert record["route"] == run_facts["route"] and record["route"]["bf16_route"]  # the compute route
            assert ("train_label_counts" in record) == (task == "sst2" and phase == "finetuned")
            preds = json.loads((small_repo / f"predictions/{task}/{phase}/test.json").read_text())
            assert len(preds) == 12
        zs = json.loads((small_repo / f"predictions/{task}/zeroshot/test.json").read_text())
        ft = json.loads((small_repo / f"predictions/{task}/finetuned/test.json").read_text())
        assert [p["id"] for p in zs] == [p["id"] for p in ft], "both phases must score the same examples"
    counts = json.loads((small_repo / "metrics/sst2/params.json").read_text())
    assert counts["base"] == counts["finetuned"] and counts["base"]["total"] > 0
    summary = (small_repo / "report/summary.md").read_text()
    assert "| sst2 | test | accuracy |" in summary and "| squad_v2 | validation | exact |" in summary
    assert "<!-- summary:start -->" in summary
    assert "Δ [paired 95% CI] | Δ CI width: clustered / i.i.d. | MDE | n |" in summary
    intervals = json.loads((small_repo / "report/summary.json").read_text())
    for task, key in (("sst2", "accuracy"), ("squad_v2", "exact")):
        for split in ("test", "validation"):
            entry = intervals[task][split]
            assert entry["n"] == 12 and "baseline" in entry[key] and "delta_iid_width" in entry[key]
            if task == "sst2":  # independent sentences: an i.i.d. interval and McNemar's test
                assert entry[key]["delta_low"] <= entry[key]["delta_high"] and "finetuned_low" in entry[key]
                assert 0 <= entry["mcnemar_p"] <= 1
            else:  # 12 questions in fewer than 30 articles: the few-cluster interval (jackknife t), or none under 5
                articles = {r["cluster"]["title"] for r in json.loads(
                    (small_repo / f"predictions/{task}/finetuned/{split}.json").read_text())}
                if len(articles) >= 5:
                    assert entry["interval"] == f"cluster jackknife t, G−1 = {len(articles) - 1} df"
                    assert entry[key]["delta_low"] <= entry[key]["delta_high"]
                else:
                    assert entry["interval"] == "no interval" and "delta_low" not in entry[key]
    card = (small_repo / "publish/sst2/README.md").read_text()
    assert "model-index" in card and "zero-shot" in card and "[paired 95% CI]" in card


def test_second_repro_is_a_quick_no_op(small_repo):
    start = time.perf_counter()
    out = run(["dvc", "repro"], small_repo)
    assert "Data and pipelines are up to date" in out
    assert time.perf_counter() - start < 30  # generous for slow CI; ~2 s on a quiet machine


def test_eval_param_change_rescores_without_retraining(small_repo):
    params = yaml.safe_load((small_repo / "params.yaml").read_text())
    original = (small_repo / "params.yaml").read_text()
    params["eval"]["limit"] = 6
    (small_repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        status = json.loads(run(["dvc", "status", "--json"], small_repo).splitlines()[-1])
    finally:
        (small_repo / "params.yaml").write_text(original)
    changed = set(status)
    assert {"zeroshot_eval@sst2", "eval@sst2", "eval@squad_v2"} <= changed
    assert not any(s.startswith(("train@", "base_model", "prepare@", "split@")) for s in changed)


def test_rerun_with_the_same_seed_is_byte_identical(small_repo):
    files = ["models/base/model.safetensors", "models/base/tokenizer.json", "models/sst2/model.safetensors",
             "metrics/sst2/finetuned.json", "metrics/squad_v2/zeroshot.json", "predictions/sst2/finetuned/test.json"]
    before = {f: (small_repo / f).read_bytes() for f in files}
    run(["dvc", "repro", "-f", "-s", "base_model"], small_repo)
    run(["dvc", "repro", "-f", "-s", "train@sst2"], small_repo)
    run(["dvc", "repro", "-f", "-s", "eval@sst2"], small_repo)
    run(["dvc", "repro", "-f", "-s", "zeroshot_eval@squad_v2"], small_repo)
    for f in files:
        assert (small_repo / f).read_bytes() == before[f], f"{f} changed between two runs with the same seed"
    assert "Data and pipelines are up to date" in run(["dvc", "repro"], small_repo)


def test_train_stage_runs_under_accelerate_launch_with_two_processes(tmp_path_factory, tmp_path):
    """train.num_processes=2 through `dvc repro`: the stage launches 2 gloo ranks and DVC records one model."""
    from transformers import AutoModelForCausalLM

    repo = copy_built(tmp_path_factory, tmp_path / "repo")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"].update(num_processes=2, per_device_batch_size=params["batch_size"] // 2)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = run(["dvc", "repro", "train@sst2"], repo)
    assert "launching 2 training processes" in out and "on 2 process(es)" in out, out[-3000:]
    info = json.loads((repo / "models/sst2/tuneval_training.json").read_text())
    assert info["num_processes"] == 2
    assert AutoModelForCausalLM.from_pretrained(repo / "models/sst2").num_parameters() > 0
    assert "up to date" in run(["dvc", "status", "train@sst2"], repo)
    assert not list((repo / "checkpoints/sst2").glob("checkpoint-*"))


def test_editing_a_prompt_reruns_scoring_but_not_parameter_counts_or_publish(tmp_path_factory, tmp_path):
    """Stage deps are what each stage really reads: a prompt edit invalidates the scoring and training stages, never
    count_params or publish (which read the trained model and the metrics, not the prompt code)."""
    repo = copy_built(tmp_path_factory, tmp_path / "repo")
    assert "up to date" in run(["dvc", "status"], repo)  # the control: nothing changed yet
    prompting = repo / "src/tuneval/tasks/prompting.py"
    prompting.write_text(prompting.read_text() + "\n# an edit\n")
    changed = json.loads(run(["dvc", "status", "--json"], repo).strip().splitlines()[-1])
    assert {"zeroshot_eval@sst2", "train@sst2", "eval@sst2"} <= set(changed)
    assert not [stage for stage in changed if stage.startswith(("count_params", "publish"))], changed
