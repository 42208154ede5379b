"""`tuneval compare` on a throwaway git repository of fake experiments (no model, no pipeline run).

Branches main / seed2 / seed3 hold SST-2 and SQuAD v2 metrics and predictions of three "seeds"; `copy` the same
files as main; `strong` an SST-2 model far better than main; `other-ids` predictions of different examples;
`stale` a metrics file out of step with its predictions; a DVC experiment saved with `dvc exp save`. The metrics
files are computed with tuneval.scoring.metrics (the engine's metrics), independently of tuneval.scoring.stats.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tuneval.cli import main
from tuneval.errors import ConfigError, DataError
from tuneval.report import compare as C
from tuneval.scoring import metrics as M
from tuneval.scoring import stats
from tuneval.scoring.stats import align_by_id, paired_intervals, prediction_statistic, resampling
from tuneval.tasks import get_task

GIT = ["git", "-c", "user.email=test@tuneval.local", "-c", "user.name=tuneval tests", "-c", "init.defaultBranch=main",
       "-c", "commit.gpgsign=false"]
SQUAD_KEYS = ["exact", "f1", "HasAns_f1", "NoAns_f1", "best_f1"]  # no METEOR: needs no WordNet
RESAMPLES = 300


def _env() -> dict[str, str]:
    return {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_CONFIG_NOSYSTEM": "1",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def git(repo: Path, *args: str) -> str:
    return subprocess.run([*GIT, "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=_env()).stdout.strip()


# ----------------------------------------------------------------------------------------- fake experiments
def sst2_records(correct: np.ndarray, order_seed: int | None = None) -> list[dict]:
    actual = ["positive" if i % 2 else "negative" for i in range(len(correct))]
    flip = {"positive": "negative", "negative": "positive"}
    records = [{"id": f"s{i}", "actual": a, "predicted": a if ok else flip[a], "logprobs": [-0.5, -1.0]}
               for i, (a, ok) in enumerate(zip(actual, correct, strict=True))]
    if order_seed is not None:  # another run may write its records in another order
        records = [records[i] for i in np.random.default_rng(order_seed).permutation(len(records))]
    return records


def sst2_metrics(records: list[dict]) -> dict:
    index = {"negative": 0, "positive": 1}
    return M.classification_metrics([index[r["actual"]] for r in records], [index[r["predicted"]] for r in records],
                                    ["negative", "positive"])


def squad_records(seed: int, n: int = 36, skill: float = 0.6, per_article: int = 6,
                  per_context: int = 1) -> list[dict]:
    """n fake SQuAD v2 prediction records (a third unanswerable), each right with probability `skill`."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n):
        answerable = i % 3 != 0
        gold = [f"answer {i}", f"the answer {i}"] if answerable else []
        right = rng.random() < skill
        prediction = (gold[0] if right else f"answer {i} plus noise") if answerable else \
            ("" if right else f"guess {i}")
        records.append({"id": f"q{i}", "prediction": prediction, "no_answer_prob": float(rng.random() * 0.9),
                        "gold": gold, "cluster": {"title": f"article {i // per_article}",
                                                  "context": f"context {i // per_context}"}})
    return records


def squad_metrics(records: list[dict]) -> dict:
    return M.squad_v2_scores({r["id"]: r["gold"] for r in records}, {r["id"]: r["prediction"] for r in records},
                             {r["id"]: r["no_answer_prob"] for r in records})


def write_experiment(repo: Path, sst2: list[dict], squad: list[dict], sst2_file_metrics: dict | None = None) -> None:
    run = {"num_fewshot": 0, "dtype": "float32", "chat_template": False, "prompt_sha": "abc"}
    zeroshot = {"sst2": {"accuracy": 0.55, "f1": 0.6}, "squad_v2": {"exact": 10.0, "f1": 20.0}}
    for task, records, scores in (("sst2", sst2, sst2_file_metrics or sst2_metrics(sst2)),
                                  ("squad_v2", squad, squad_metrics(squad))):
        (repo / "metrics" / task).mkdir(parents=True, exist_ok=True)
        (repo / "predictions" / task / "finetuned").mkdir(parents=True, exist_ok=True)
        (repo / "metrics" / task / "finetuned.json").write_text(json.dumps({"run": run, "test": scores}))
        (repo / "metrics" / task / "zeroshot.json").write_text(json.dumps({"run": run, "test": zeroshot[task]}))
        (repo / "predictions" / task / "finetuned" / "test.json").write_text(json.dumps(records))


def commit_branch(repo: Path, branch: str, sst2: list[dict], squad: list[dict], **kwargs) -> None:
    git(repo, "checkout", "-q", "-B", branch, "main")
    write_experiment(repo, sst2, squad, **kwargs)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", branch)


SST2_N = 40
RNG = np.random.default_rng(7)
CORRECT = {"main": RNG.random(SST2_N) < 0.7, "seed2": RNG.random(SST2_N) < 0.75, "seed3": RNG.random(SST2_N) < 0.7}


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("experiments")
    git(repo, "init", "-q")
    write_experiment(repo, sst2_records(CORRECT["main"]), squad_records(1))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "main")
    commit_branch(repo, "seed2", sst2_records(CORRECT["seed2"], order_seed=3), squad_records(2))
    commit_branch(repo, "seed3", sst2_records(CORRECT["seed3"]), squad_records(3))
    commit_branch(repo, "copy", sst2_records(CORRECT["main"]), squad_records(1))
    strong = CORRECT["main"].copy()
    strong[:] = True
    commit_branch(repo, "strong", sst2_records(strong), squad_records(1))
    other = sst2_records(CORRECT["main"])
    other[5] = {**other[5], "id": "s999"}
    commit_branch(repo, "other-ids", other, squad_records(1))
    stale = sst2_records(CORRECT["main"])
    commit_branch(repo, "stale", stale, squad_records(1), sst2_file_metrics={**sst2_metrics(stale), "accuracy": 0.1})
    git(repo, "checkout", "-q", "main")
    return repo


def read(repo: Path, rev: str, path: str):
    return json.loads(git(repo, "show", f"{rev}:{path}"))


# ----------------------------------------------------------------------------------------------- the tests
def test_values_mean_and_sample_sd_are_numpys(repo):
    revs, rows = C.compare(repo, ["main", "seed2", "seed3"], resamples=RESAMPLES)
    assert [r.commit for r in revs] == [git(repo, "rev-parse", b) for b in ("main", "seed2", "seed3")]
    sst2 = {row.metric: row for row in rows if row.task == "sst2"}
    assert list(sst2) == get_task("sst2").metrics.headline
    squad = {row.metric: row for row in rows if row.task == "squad_v2"}
    assert list(squad) == SQUAD_KEYS  # the headline metrics every metrics file has, in the task's order
    for task, table in (("sst2", sst2), ("squad_v2", squad)):
        files = [read(repo, b, f"metrics/{task}/finetuned.json")["test"] for b in ("main", "seed2", "seed3")]
        for metric, row in table.items():
            values = [f[metric] for f in files]
            assert list(row.values.values()) == values
            assert row.mean == pytest.approx(np.mean(values), abs=1e-12)
            assert row.sd == pytest.approx(np.std(values, ddof=1), abs=1e-12)
            assert row.sd != pytest.approx(np.std(values, ddof=0))  # sample sd, not population
            assert row.n == (SST2_N if task == "sst2" else 36)
    assert sst2["accuracy"].zeroshot == 0.55  # the same in every experiment
    assert sst2["precision"].zeroshot is None and not sst2["precision"].zeroshot_differs  # not in the files


def test_intervals_equal_the_reports_paired_intervals_called_directly(repo):
    """One implementation of paired statistics: compare's intervals are stats.paired_intervals' (the report's),
    by the method the number of clusters calls for: SST-2's 40 examples the bootstrap, SQuAD's 6 articles the
    cluster jackknife t on 5 df (never the i.i.d. bootstrap of its 36 questions)."""
    names = ["main", "seed2", "seed3"]
    _, rows = C.compare(repo, names, tasks=["sst2", "squad_v2"], pairs="all", resamples=RESAMPLES, seed=5)
    methods = {"sst2": f"bootstrap, {RESAMPLES} resamples", "squad_v2": "cluster jackknife t, G−1 = 5 df"}
    for task_name in ("sst2", "squad_v2"):
        task = get_task(task_name)
        records = {b: read(repo, b, f"predictions/{task_name}/finetuned/test.json") for b in names}
        keys = get_task(task_name).metrics.headline if task_name == "sst2" else SQUAD_KEYS
        unit = resampling(task, records["main"], RESAMPLES)
        labels, name = stats.cluster_labels(task, records["main"])
        assert {row.unit for row in rows if row.task == task_name} == {name}
        assert {row.method for row in rows if row.task == task_name} == {methods[task_name]} == {unit.interval()}
        assert (labels is None) == (task_name == "sst2")  # SQuAD questions are resampled in clusters
        for a, b in [("main", "seed2"), ("main", "seed3"), ("seed2", "seed3")]:
            first, second = align_by_id(records["main"], records[a])[1], align_by_id(records["main"], records[b])[1]
            direct = paired_intervals(prediction_statistic(task, first, keys), prediction_statistic(task, second, keys),
                                      len(first), unit, seed=5)
            for row in (row for row in rows if row.task == task_name):
                (comparison,) = [c for c in row.comparisons if (c.a, c.b) == (a, b)]
                assert comparison.interval == direct[row.metric].delta_ci
                assert comparison.delta == pytest.approx(row.values[b] - row.values[a], abs=1e-12)
                assert comparison.delta == pytest.approx(direct[row.metric].delta, abs=1e-9)


def test_winner_vs_runner_up_counts_only_beyond_noise(repo):
    _, rows = C.compare(repo, ["main", "strong"], tasks=["sst2"], metrics=["accuracy"], resamples=RESAMPLES)
    (row,) = rows
    assert (row.winner, row.runner_up) == ("strong", "main")
    (comparison,) = row.comparisons
    assert (comparison.a, comparison.b) == ("main", "strong")
    assert comparison.delta == pytest.approx(1.0 - CORRECT["main"].mean())
    assert comparison.interval.low > 0 and row.winner_beats_runner_up() is True

    _, rows = C.compare(repo, ["main", "seed3"], tasks=["sst2"], metrics=["accuracy"], resamples=RESAMPLES)
    (row,) = rows
    accuracy = {name: CORRECT[name].mean() for name in ("main", "seed3")}
    assert row.winner == max(accuracy, key=accuracy.get)
    (comparison,) = row.comparisons
    assert comparison.interval.low <= 0 <= comparison.interval.high  # two seeds of one config: noise
    assert row.winner_beats_runner_up() is False


def test_identical_experiments_differ_by_exactly_zero(repo):
    _, rows = C.compare(repo, ["main", "copy"], resamples=RESAMPLES)
    assert {row.task for row in rows} == {"sst2", "squad_v2"}
    for row in rows:
        assert row.sd == 0.0
        (comparison,) = row.comparisons
        assert comparison.delta == 0.0
        assert (comparison.interval.low, comparison.interval.high) == (0.0, 0.0)
        assert row.winner_beats_runner_up() is False
        assert (row.winner, row.runner_up) == ("main", "copy")  # a tie goes to the earlier argument


def test_unknown_revision_names_itself(repo, capsys):
    with pytest.raises(ConfigError, match="'no-such-exp'"):
        C.compare(repo, ["main", "no-such-exp"])
    assert main(["compare", "main", "no-such-exp", "--repo", str(repo)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no-such-exp" in err and "Traceback" not in err


def test_mismatched_example_ids_name_both_revisions_and_the_file(repo):
    with pytest.raises(DataError) as info:
        C.compare(repo, ["main", "other-ids"], tasks=["sst2"])
    message = str(info.value)
    assert "main" in message and "other-ids" in message and "predictions/sst2/finetuned/test.json" in message
    assert "s999" in message and "s5" in message


def test_predictions_out_of_step_with_metrics_are_refused(repo):
    with pytest.raises(DataError, match="stale: sst2 test accuracy"):
        C.compare(repo, ["main", "stale"], tasks=["sst2"])


def test_a_file_missing_at_a_revision_names_revision_and_path(repo):
    first = git(repo, "rev-list", "--max-parents=0", "main")
    with pytest.raises(DataError, match=r"main \(\w{7}\): metrics/sst2/finetuned.json has no split 'validation'"):
        C.compare(repo, ["main", "seed2"], tasks=["sst2"], splits=["validation"])
    git(repo, "checkout", "-q", "-b", "no-predictions", first)
    git(repo, "rm", "-q", "predictions/sst2/finetuned/test.json")
    git(repo, "commit", "-q", "-m", "without predictions")
    git(repo, "checkout", "-q", "main")
    missing = r"no-predictions \(\w{7}\): predictions/sst2/finetuned/test.json is not in git"
    with pytest.raises(DataError, match=missing):
        C.compare(repo, ["main", "no-predictions"], tasks=["sst2"])


def test_dvc_experiment_names_resolve(repo, tmp_path):
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    subprocess.run(["dvc", "init", "-q"], cwd=clone, check=True, env=_env())
    git(clone, "commit", "-q", "-m", "dvc init")
    write_experiment(clone, sst2_records(CORRECT["seed2"]), squad_records(2))
    subprocess.run(["dvc", "exp", "save", "-q", "-n", "lr-3e-4"], cwd=clone, check=True, env=_env(),
                   capture_output=True)
    revs, rows = C.compare(clone, ["HEAD", "lr-3e-4"], tasks=["sst2"], metrics=["accuracy"], resamples=RESAMPLES)
    head = git(clone, "rev-parse", "HEAD")
    assert revs[1].ref == f"refs/exps/{head[:2]}/{head[2:]}/lr-3e-4"
    assert revs[1].commit == git(clone, "rev-parse", revs[1].ref) != head
    assert rows[0].values == {"HEAD": CORRECT["main"].mean(), "lr-3e-4": CORRECT["seed2"].mean()}


def test_cli_prints_the_table_and_writes_the_same_numbers_as_json(repo, tmp_path, capsys):
    out = tmp_path / "compare.json"
    argv = ["compare", "main", "seed2", "seed3", "--repo", str(repo), "--task", "sst2", "--resamples",
            str(RESAMPLES), "--json", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    revs, rows = C.compare(repo, ["main", "seed2", "seed3"], tasks=["sst2"], resamples=RESAMPLES)
    accuracy = rows[0]
    assert accuracy.metric == "accuracy"
    line = next(line for line in text.splitlines() if line.startswith("accuracy "))
    assert line.split()[1:] == ["0.5500", *[f"{v:.4f}" for v in accuracy.values.values()],
                                f"{accuracy.mean:.4f}", f"{accuracy.sd:.4f}"]
    verdict = "yes" if accuracy.winner_beats_runner_up() else "no"
    assert (f"accuracy: winner {accuracy.winner} beats runner-up {accuracy.runner_up} by more than noise: "
            f"{verdict}") in text
    assert "ddof=1" in text
    saved = json.loads(out.read_text())
    assert saved == json.loads(json.dumps(C.to_json(revs, rows, resamples=RESAMPLES)))
    entry = saved["tasks"]["sst2"]["test"]["metrics"]["accuracy"]
    assert entry["sd"] == accuracy.sd and entry["comparisons"][0]["low"] == accuracy.comparisons[0].interval.low


def test_cli_entry_point_runs_as_a_module(repo):
    done = subprocess.run([sys.executable, "-m", "tuneval.cli", "compare", "main", "copy", "--repo", str(repo),
                           "--metric", "f1", "--resamples", "50"], capture_output=True, text=True, env=_env())
    assert done.returncode == 0, done.stderr
    assert "sst2 [test]" in done.stdout and "squad_v2 [test]" in done.stdout
    assert "f1: winner main beats runner-up copy by more than noise: no" in done.stdout
    assert "+0.0000 [+0.0000, +0.0000]" in done.stdout


def test_too_few_clusters_give_values_and_spread_but_no_interval(repo, capsys):
    if not hasattr(stats, "cluster_labels"):
        pytest.skip("tuneval.scoring.stats has no cluster_labels yet")
    for branch, seed in (("few-a", 1), ("few-b", 2)):
        commit_branch(repo, branch, sst2_records(CORRECT["main"]), squad_records(seed, n=12))
    git(repo, "checkout", "-q", "main")
    records = read(repo, "few-a", "predictions/squad_v2/finetuned/test.json")
    with pytest.raises(DataError):  # 12 contexts in 2 articles: too few for an honest cluster bootstrap
        stats.cluster_labels(get_task("squad_v2"), records)
    _, rows = C.compare(repo, ["few-a", "few-b"], tasks=["squad_v2"], resamples=RESAMPLES)
    files = [read(repo, b, "metrics/squad_v2/finetuned.json")["test"] for b in ("few-a", "few-b")]
    for row in rows:
        assert row.unit == "" and row.note.startswith("no interval")
        assert row.comparisons[0].interval is None and row.winner_beats_runner_up() is False
        assert row.sd == pytest.approx(np.std([f[row.metric] for f in files], ddof=1), abs=1e-12)
    assert main(["compare", "few-a", "few-b", "--repo", str(repo), "--task", "squad_v2"]) == 0
    assert "[no interval]" in capsys.readouterr().out


def test_an_experiment_name_on_several_baselines_means_the_one_on_head(repo, tmp_path):
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    head, seed2, seed3 = (git(clone, "rev-parse", rev) for rev in ("HEAD", "origin/seed2", "origin/seed3"))
    other = git(clone, "rev-parse", "origin/copy")
    git(clone, "update-ref", f"refs/exps/{head[:2]}/{head[2:]}/sweep-1", seed2)
    git(clone, "update-ref", f"refs/exps/{other[:2]}/{other[2:]}/sweep-1", seed3)
    assert C.resolve(clone, "sweep-1").commit == seed2
    git(clone, "checkout", "-q", "-b", "elsewhere", "origin/strong")
    with pytest.raises(ConfigError, match="'sweep-1' is ambiguous"):
        C.resolve(clone, "sweep-1")


def test_a_zero_shot_value_is_shown_only_when_all_experiments_share_it(repo, capsys):
    git(repo, "checkout", "-q", "-b", "other-zeroshot", "main")
    path = repo / "metrics" / "sst2" / "zeroshot.json"
    path.write_text(json.dumps({"test": {"accuracy": 0.6, "f1": 0.6}}))
    git(repo, "commit", "-q", "-am", "another zero-shot run")
    git(repo, "checkout", "-q", "main")
    _, rows = C.compare(repo, ["main", "other-zeroshot"], tasks=["sst2"], metrics=["accuracy", "f1"], resamples=50)
    accuracy, f1 = rows
    assert (accuracy.zeroshot, accuracy.zeroshot_differs) == (None, True)
    assert (f1.zeroshot, f1.zeroshot_differs) == (0.6, False)
    assert main(["compare", "main", "other-zeroshot", "--repo", str(repo), "--task", "sst2", "--resamples", "50"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert next(line for line in lines if line.startswith("accuracy ")).split()[1] == "differs"
    assert next(line for line in lines if line.startswith("f1 ")).split()[1] == "0.6000"


def test_text_and_json_name_each_splits_interval_method(repo, capsys):
    revs, rows = C.compare(repo, ["main", "seed2"], tasks=["squad_v2"], resamples=RESAMPLES)
    text = C.format_text(revs, rows, resamples=RESAMPLES)
    assert "squad_v2 [test]  n = 36  (resampling whole articles; cluster jackknife t, G−1 = 5 df)" in text
    saved = C.to_json(revs, rows, resamples=RESAMPLES)["tasks"]["squad_v2"]["test"]
    assert saved["interval"] == "cluster jackknife t, G−1 = 5 df"
    assert {entry["interval"] for entry in saved["metrics"].values()} == {saved["interval"]}
    best = next(line for line in text.splitlines() if line.startswith("best_f1"))
    assert best.startswith("best_f1 (in-sample upper bound) ")  # chosen on these questions: labelled so
    assert "in-sample" in saved["metrics"]["best_f1"]["definition"] and "definition" not in saved["metrics"]["f1"]
