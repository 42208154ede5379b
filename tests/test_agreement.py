"""`tuneval agree` on a throwaway git repository: committed predictions from one compute route, a "rerun" on
another in the working tree (a few predictions moved), no model. Also scripts/repro.sh's README check.

Records have the real files' shape (predictions/<task>/<phase>/validation.json); expected metric values come from
tuneval.scoring.metrics directly, independently of the bootstrap's tuneval.scoring.stats.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tuneval.cli import main
from tuneval.report.agreement import readme_sync_blocker
from tuneval.scoring import metrics as M
from tuneval.scoring.stats import paired_intervals, prediction_statistic, resampling
from tuneval.tasks import get_task

REPO = Path(__file__).resolve().parents[1]
GIT = ["git", "-c", "user.email=test@tuneval.local", "-c", "user.name=tuneval tests", "-c", "init.defaultBranch=main",
       "-c", "commit.gpgsign=false"]
RESAMPLES = 300
SST2_N, SQUAD_N = 40, 64
METRICS = ["accuracy", "precision", "recall", "f1", "macro_f1", "exact", "HasAns_f1", "NoAns_f1", "answered",
           "best_f1"]  # every headline metric but SQuAD's BLEU / ROUGE / METEOR (METEOR needs WordNet)
METRIC_FLAGS = [arg for metric in METRICS for arg in ("--metric", metric)]
XEON = {"device": "Intel(R) Xeon(R) Platinum 8480C CPU @ 2.00GHz (avx2, avx512f, avx512_bf16, amx_bf16)",
        "device_kind": "cpu", "flags": ["avx2", "avx512f", "avx512_bf16", "amx_bf16"], "bf16_route": "native",
        "threads": 2, "versions": {"torch": "2.5.1", "transformers": "5.0.0", "peft": "0.13.0", "accelerate": "1.0.0"},
        "git_revision": "a" * 40}
EPYC = {**XEON, "device": "AMD EPYC 7B13 64-Core Processor (avx2)", "flags": ["avx2"], "bf16_route": "fp32_gemms",
        "git_revision": "b" * 40 + "+dirty"}


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run([*GIT, "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


# ----------------------------------------------------------------------------------------- fake predictions
def sst2_records(seed: int) -> list[dict]:
    """SST-2 records as the engine writes them: {actual, id, loglik, predicted}."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(SST2_N):
        actual = "positive" if i % 2 else "negative"
        wrong = rng.random() < 0.35
        predicted = {"positive": "negative", "negative": "positive"}[actual] if wrong else actual
        neg, pos = (-1.0, -2.0) if predicted == "negative" else (-2.0, -1.0)
        records.append({"actual": actual, "id": str(i), "loglik": {"negative": neg, "positive": pos},
                        "predicted": predicted})
    return records


def squad_records(seed: int) -> list[dict]:
    """SQuAD v2 records as the engine writes them; 8 articles of 4 contexts with 2 questions each (32 contexts:
    enough for a clustered interval)."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(SQUAD_N):
        gold = [f"answer {i}", f"the answer {i}"] if i % 3 else []
        right = rng.random() < 0.55
        prediction = (gold[0] if right else f"answer {i} and more") if gold else ("" if right else f"guess {i}")
        generated = " " + (prediction or "unanswerable")
        prob = float(rng.random() * 0.9)
        records.append({"cluster": {"context": f"ctx{i // 2:03d}", "title": f"Article {i // 8}"},
                        "generated": generated, "gold": gold, "id": f"5ad3{i:020x}",
                        "no_answer_logprob": float(np.log(prob + 1e-9)), "no_answer_prob": prob,
                        "prediction": prediction})
    return records


def run_record(route: dict | None) -> dict:
    record = {"chat_template": False, "dtype": "bfloat16", "num_fewshot": 0, "prompt_sha": "d0edf1e06e3d"}
    return record if route is None else {**record, "route": route}


def write(repo: Path, task: str, phase: str, records: list[dict] | None = None, route: dict | None = None,
          run: bool = True) -> None:
    folder = repo / "predictions" / task / phase
    folder.mkdir(parents=True, exist_ok=True)
    if records is not None:
        (folder / "validation.json").write_text(json.dumps(records, indent=2, sort_keys=True) + "\n")
    if run:
        (folder / "run.json").write_text(json.dumps(run_record(route), indent=2, sort_keys=True) + "\n")


def read(repo: Path, task: str, phase: str) -> list[dict]:
    return json.loads((repo / "predictions" / task / phase / "validation.json").read_text())


COMMITTED = {("sst2", "zeroshot"): sst2_records(1), ("sst2", "finetuned"): sst2_records(2),
             ("squad_v2", "zeroshot"): squad_records(3), ("squad_v2", "finetuned"): squad_records(4)}


@pytest.fixture
def repo(tmp_path) -> Path:
    """Committed: every task and phase, scored on the Xeon (bf16 native)."""
    git(tmp_path, "init", "-q")
    for (task, phase), records in COMMITTED.items():
        write(tmp_path, task, phase, records, XEON)
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "committed study")
    return tmp_path


def rerun_elsewhere(repo: Path, route: dict | None = EPYC) -> None:
    """The working tree after a rerun on `route`: 3 SST-2 zero-shot labels and 2 SQuAD v2 fine-tuned answers moved
    (one of them to an abstention); every run.json records the new route."""
    sst2 = read(repo, "sst2", "zeroshot")
    flip = {"positive": "negative", "negative": "positive"}
    wrong = [r for r in sst2 if r["predicted"] != r["actual"]][:2]
    right = [r for r in sst2 if r["predicted"] == r["actual"]][:1]
    for record in wrong + right:
        record["predicted"] = flip[record["predicted"]]
    write(repo, "sst2", "zeroshot", sst2, route)
    squad = read(repo, "squad_v2", "finetuned")
    answered = [r for r in squad if r["prediction"]]
    answered[0]["prediction"] = answered[0]["prediction"] + " extra"
    answered[1]["prediction"] = ""
    write(repo, "squad_v2", "finetuned", squad, route)
    for task, phase in (("sst2", "finetuned"), ("squad_v2", "zeroshot")):
        write(repo, task, phase, None, route)


def agree(repo: Path, capsys, *args: str) -> tuple[int, str, str]:
    code = main(["agree", "--repo", str(repo), "--resamples", str(RESAMPLES), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def expected_values(task: str, records: list[dict]) -> dict[str, float]:
    """Metrics straight from tuneval.scoring.metrics (what the metrics files hold), not from the bootstrap."""
    if task == "sst2":
        index = {"negative": 0, "positive": 1}
        return M.classification_metrics([index[r["actual"]] for r in records],
                                        [index[r["predicted"]] for r in records], ["negative", "positive"])
    scores = M.squad_v2_scores({r["id"]: r["gold"] for r in records}, {r["id"]: r["prediction"] for r in records},
                               {r["id"]: r["no_answer_prob"] for r in records})
    return scores | {"answered": 100.0 * sum(r["prediction"] != "" for r in records) / len(records)}


# ----------------------------------------------------------------------------------------------- the tests
def test_agree_counts_moved_predictions_and_tests_each_metric(repo, capsys, tmp_path):
    rerun_elsewhere(repo)
    out_json = tmp_path / "agree.json"
    code, out, err = agree(repo, capsys, *METRIC_FLAGS, "--json", str(out_json))
    assert code == 0, err
    blocks = {(b["task"], b["phase"]): b for b in json.loads(out_json.read_text())["results"]}
    assert list(blocks) == [("squad_v2", "zeroshot"), ("squad_v2", "finetuned"), ("sst2", "zeroshot"),
                            ("sst2", "finetuned")]
    assert {key: b["differing"] for key, b in blocks.items()} == {
        ("squad_v2", "zeroshot"): 0, ("squad_v2", "finetuned"): 2, ("sst2", "zeroshot"): 3, ("sst2", "finetuned"): 0}
    assert blocks[("squad_v2", "finetuned")]["abstentions_changed"] == 1
    assert blocks[("sst2", "zeroshot")]["abstentions_changed"] is None
    assert "3 of 40 predicted labels differ (7.50%)" in out
    assert "2 of 64 answers differ (3.12%), 1 of them between answering and abstaining" in out
    assert "0 of 40 predicted labels differ" in out and "0 of 64 answers differ" in out
    assert "5 predictions differ in all" in out
    # both routes, and why they differ
    assert out.count("committed route: cpu Intel Xeon Platinum 8480C (amx_bf16), bf16 native, 2 threads, "
                     "torch 2.5.1") == 4
    assert out.count("local route:     cpu AMD EPYC 7B13 (avx2), bf16 as fp32 GEMMs, 2 threads, torch 2.5.1") == 4
    assert out.count("routes differ: committed: Intel Xeon Platinum 8480C (amx_bf16), bf16 native; local: AMD EPYC "
                     "7B13 (avx2), bf16 as fp32 GEMMs") == 4
    assert blocks[("sst2", "zeroshot")]["routes"] == {"committed": XEON, "local": EPYC}
    # every metric: both values, Δ, its paired interval (the report's: stats.paired_intervals) and the verdict
    for (task, phase), block in blocks.items():
        t = get_task(task)
        committed = COMMITTED[(task, phase)]
        local = read(repo, task, phase)
        expected_a, expected_b = expected_values(task, committed), expected_values(task, local)
        keys = [k for k in METRICS if k in t.metrics.headline]
        assert set(block["metrics"]) == set(keys)  # (JSON keys sorted; the text keeps the task's order)
        paired = paired_intervals(prediction_statistic(t, committed, keys), prediction_statistic(t, local, keys),
                                  len(committed), resampling(t, committed, RESAMPLES), seed=0)
        for key, entry in block["metrics"].items():
            assert entry["committed"] == pytest.approx(expected_a[key], abs=1e-9)
            assert entry["local"] == pytest.approx(expected_b[key], abs=1e-9)
            assert entry["delta"] == pytest.approx(expected_b[key] - expected_a[key], abs=1e-9)
            assert (entry["low"], entry["high"]) == (paired[key].delta_ci.low, paired[key].delta_ci.high)
            assert entry["inside"] == (entry["low"] <= 0 <= entry["high"])
    assert block_metric(blocks, "sst2", "finetuned", "accuracy") == {
        "committed": expected_values("sst2", COMMITTED[("sst2", "finetuned")])["accuracy"],
        "local": expected_values("sst2", COMMITTED[("sst2", "finetuned")])["accuracy"],
        "delta": 0.0, "low": 0.0, "high": 0.0, "inside": True}
    # a net +1 of 40 labels right: Δ accuracy +0.025, an interval that holds 0 ("yes")
    accuracy = block_metric(blocks, "sst2", "zeroshot", "accuracy")
    assert accuracy["delta"] == pytest.approx(1 / SST2_N) and accuracy["inside"] is True
    row = next(line for line in out.splitlines() if line.strip().startswith("accuracy") and "+0.0250" in line)
    assert row.split()[-1] == "yes"
    assert "every metric with an interval agrees within noise" in out
    assert "(whole articles (8 articles), " in out  # SQuAD: whole articles (8: the jackknife t)
    assert "(examples (i.i.d.), " in out


def block_metric(blocks: dict, task: str, phase: str, metric: str) -> dict:
    return blocks[(task, phase)]["metrics"][metric]


def test_a_shift_beyond_noise_is_outside_its_interval(repo, capsys):
    sst2 = read(repo, "sst2", "zeroshot")
    for record in sst2:  # every wrong label made right: far more than noise
        record["predicted"] = record["actual"]
    write(repo, "sst2", "zeroshot", sst2, EPYC)
    code, out, err = agree(repo, capsys, "--task", "sst2", "--phase", "zeroshot", "--json")
    assert code == 0, err
    (block,) = json.loads(out)["results"]
    moved = sum(r["predicted"] != r["actual"] for r in COMMITTED[("sst2", "zeroshot")])
    assert block["differing"] == moved > 5
    accuracy = block["metrics"]["accuracy"]
    assert accuracy["delta"] == pytest.approx(moved / SST2_N)
    assert accuracy["low"] > 0 and accuracy["inside"] is False
    assert json.loads(out)["all_inside"] is False
    code, out, _ = agree(repo, capsys, "--task", "sst2", "--phase", "zeroshot")
    row = next(line for line in out.splitlines() if line.strip().startswith("accuracy"))
    assert row.split()[-1] == "NO"
    assert "outside the noise: sst2 zeroshot validation accuracy" in out


def test_unrecorded_routes(repo, capsys):
    """Predictions from before routes were recorded: run.json without "route", or no run.json at all."""
    write(repo, "sst2", "zeroshot", None, route=None)
    git(repo, "commit", "-qam", "a run.json without a route")
    rerun_elsewhere(repo, route=None)
    (repo / "predictions" / "sst2" / "zeroshot" / "run.json").unlink()
    code, out, err = agree(repo, capsys, "--task", "sst2")
    assert code == 0, err
    zeroshot = out.split("sst2 zeroshot")[1].split("sst2 finetuned")[0]
    assert "committed route: unrecorded" in zeroshot and "local route:     unrecorded" in zeroshot
    assert "routes: cannot be compared (both routes are unrecorded)" in zeroshot
    assert "3 of 40 predicted labels differ" in zeroshot
    finetuned = out.split("sst2 finetuned")[1]
    assert "committed route: cpu Intel Xeon" in finetuned and "local route:     unrecorded" in finetuned
    assert "routes: cannot be compared (the local route is unrecorded)" in finetuned


def test_rev_picks_the_committed_side(repo, capsys):
    rerun_elsewhere(repo)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "rerun committed")
    code, out, err = agree(repo, capsys, *METRIC_FLAGS)
    assert code == 0, err
    assert "0 predictions differ in all" in out and "against HEAD (" in out
    assert "routes: the same" in out
    code, out, err = agree(repo, capsys, *METRIC_FLAGS, "--rev", "HEAD~1")
    assert code == 0, err
    assert "5 predictions differ in all" in out and "against HEAD~1 (" in out


def test_missing_predictions_name_the_file(repo, capsys):
    (repo / "predictions" / "squad_v2" / "finetuned" / "validation.json").unlink()
    code, _, err = agree(repo, capsys, *METRIC_FLAGS)
    assert code == 1
    assert "predictions/squad_v2/finetuned/validation.json is committed at HEAD" in err
    assert "missing from the working tree" in err
    code, out, err = agree(repo, capsys, "--task", "sst2")  # the other task still compares
    assert code == 0, err
    (repo / "predictions" / "sst2" / "zeroshot" / "test.json").write_text("[]")
    code, _, err = agree(repo, capsys, "--task", "sst2")
    assert code == 1
    assert "predictions/sst2/zeroshot/test.json is in the working tree but not committed at HEAD" in err


def test_different_example_ids_name_the_file(repo, capsys):
    sst2 = read(repo, "sst2", "finetuned")
    sst2[3]["id"] = "9999"
    write(repo, "sst2", "finetuned", sst2, XEON)
    code, _, err = agree(repo, capsys, "--task", "sst2")
    assert code == 1
    assert "predictions/sst2/finetuned/validation.json: the working tree and HEAD" in err
    assert "scored different examples" in err and "only committed: ['3']" in err and "only local: ['9999']" in err


def test_bad_arguments(repo, capsys):
    assert agree(repo, capsys, "--rev", "no-such-branch")[0] == 1
    code, _, err = agree(repo, capsys, "--metric", "no_such_metric")
    assert code == 1 and "--metric no_such_metric" in err
    empty = repo / "empty"
    empty.mkdir()
    git(empty, "init", "-q")
    git(empty, "commit", "-q", "--allow-empty", "-m", "nothing")
    code, _, err = agree(empty, capsys)
    assert code == 1 and "no predictions to compare" in err


def test_default_metrics_are_the_headline(repo, capsys, wordnet_ready):
    rerun_elsewhere(repo)
    code, out, err = agree(repo, capsys, "--json")
    assert code == 0, err
    for block in json.loads(out)["results"]:
        assert set(block["metrics"]) == set(get_task(block["task"]).metrics.headline)
    lines = agree(repo, capsys, "--task", "squad_v2", "--phase", "finetuned")[1].splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["metric"])
    shown = [line.split()[0] for line in lines[header + 1:] if line.strip()][:-1]  # less the summary line
    assert shown == get_task("squad_v2").metrics.headline  # the text keeps the task's order


# --------------------------------------------------------------------------------- scripts/repro.sh's check
def test_readme_sync_blocker(repo, tmp_path):
    assert readme_sync_blocker(repo) is None  # the rerun reproduced the committed predictions
    sst2 = read(repo, "sst2", "zeroshot")
    sst2[0]["predicted"] = {"positive": "negative", "negative": "positive"}[sst2[0]["predicted"]]
    write(repo, "sst2", "zeroshot", sst2, XEON)
    assert readme_sync_blocker(repo) is None  # changed on the same route: a params or code change, not the route
    write(repo, "sst2", "zeroshot", None, EPYC)
    message = readme_sync_blocker(repo)
    assert message is not None and message.startswith("README.md: results block NOT updated")
    assert "sst2 zeroshot (validation): committed: Intel Xeon Platinum 8480C (amx_bf16), bf16 native; this run: " \
           "AMD EPYC 7B13 (avx2), bf16 as fp32 GEMMs" in message
    assert "tuneval agree" in message and "TUNEVAL_SYNC_README=1" in message
    assert "sst2 finetuned" not in message  # unchanged predictions never block
    write(repo, "sst2", "zeroshot", None, None)
    assert "sst2 zeroshot (validation): this run's route is unrecorded" in readme_sync_blocker(repo)
    fresh = tmp_path / "fresh"  # scripts/repro.sh in a new repository: nothing committed to protect
    fresh.mkdir()
    git(fresh, "init", "-q")
    write(fresh, "sst2", "zeroshot", sst2, EPYC)
    assert readme_sync_blocker(fresh) is None


def _readme_step() -> str:
    """scripts/repro.sh's README step: from the route check to the end of its if/else."""
    text = (REPO / "scripts" / "repro.sh").read_text()
    match = re.search(r"^hold=\$\(.*?^fi$", text, re.S | re.M)
    assert match, "scripts/repro.sh no longer checks the compute route before syncing README.md"
    return match.group(0)


@pytest.mark.parametrize("route", [XEON, EPYC])
def test_repro_sh_does_not_rewrite_readme_from_another_route(repo, route):
    from tuneval.report.summary import README_END, README_START

    readme = f"# study\n{README_START}\nold results\n{README_END}\n"
    (repo / "README.md").write_text(readme)
    (repo / "report").mkdir()
    (repo / "report" / "summary.md").write_text(f"# summary\n{README_START}\nnew results\n{README_END}\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "readme")
    rerun_elsewhere(repo, route)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("TUNEVAL_SYNC_README", None)
    step = ["bash", "-c", "set -euo pipefail\n" + _readme_step()]
    proc = subprocess.run(step, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    if route is XEON:  # predictions moved on the committed route: the report's numbers are simply newer
        assert "new results" in (repo / "README.md").read_text()
        assert "copied from report/summary.md" in proc.stdout
        return
    assert (repo / "README.md").read_text() == readme
    assert "results block NOT updated" in proc.stdout and "tuneval agree" in proc.stdout
    proc = subprocess.run(step, cwd=repo, env={**env, "TUNEVAL_SYNC_README": "1"}, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "new results" in (repo / "README.md").read_text()
    assert "TUNEVAL_SYNC_README=1: copying" in proc.stdout
