"""`tuneval curve`: a learning curve from DVC experiments.

Most tests use a throwaway git repository whose "experiments" are commits under DVC's experiment refs
(refs/exps/<baseline[:2]>/<baseline[2:]>/<name>, written with git directly: no model, no pipeline), holding
params.yaml, SST-2 and SQuAD v2 metrics and predictions. The metrics files are computed with
tuneval.scoring.metrics (the engine's metrics), the intervals checked against tuneval.scoring.stats called
directly. The last two run a real sweep of DVC experiments on the tiny model (`dvc exp run`, on a copy of the
session's small built repository, which other test modules build anyway): a training-size sweep of 3 experiments
for the curve, and one more on other examples for the refusal (slow).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_compare import git, squad_metrics
from test_compare import squad_records as compare_squad_records

from tuneval.cli import main
from tuneval.errors import ConfigError, DataError
from tuneval.report import curve as C
from tuneval.scoring import metrics as M
from tuneval.scoring import stats
from tuneval.scoring.stats import paired_bootstrap, prediction_statistic
from tuneval.tasks import get_task

RESAMPLES = 200
SST2_N = 60
SQUAD_N = 60
RUN = {"num_fewshot": 0, "dtype": "float32", "chat_template": False, "prompt_sha": "abc"}
PARAMS = {"lr": 3e-4, "epochs": 1, "seed": 1, "model": {"name": "tiny-llama", "dtype": "float32"},
          "data": {"seed": 1, "draw_seed": 1, "train_examples": {"sst2": 400, "squad_v2": 200},
                   "validation_examples": {"sst2": None, "squad_v2": 60}},
          "train": {"method": "lora", "lora": {"r": 8, "target_modules": ["q_proj", "v_proj"]}},
          "eval": {"splits": ["validation"], "limit": None}}


# ----------------------------------------------------------------------------------------- fake experiments
def sst2_records(correct: np.ndarray) -> list[dict]:
    flip = {"positive": "negative", "negative": "positive"}
    actual = ["positive" if i % 3 else "negative" for i in range(len(correct))]
    return [{"id": i, "actual": a, "predicted": a if ok else flip[a], "logprobs": [-0.5, -1.0]}
            for i, (a, ok) in enumerate(zip(actual, correct, strict=True))]


def sst2_metrics(records: list[dict]) -> dict:
    index = {"negative": 0, "positive": 1}
    return M.classification_metrics([index[r["actual"]] for r in records], [index[r["predicted"]] for r in records],
                                    ["negative", "positive"])


def squad_records(seed: int, skill: float, n: int = SQUAD_N) -> list[dict]:
    return compare_squad_records(seed, n, skill, per_article=5, per_context=2)


def correct(seed: int, rate: float, n: int = SST2_N) -> np.ndarray:
    return np.random.default_rng(seed).random(n) < rate


ZEROSHOT_SST2 = sst2_records(correct(99, 0.5))
ZEROSHOT_SQUAD = squad_records(99, 0.2)


def write_run(repo: Path, params: dict, sst2: list[dict], squad: list[dict], run: dict | None = None,
              zeroshot_sst2: list[dict] | None = None) -> None:
    """One pipeline result in the working tree: params.yaml, both tasks' metrics and predictions."""
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    zs_sst2 = zeroshot_sst2 or [r for r in ZEROSHOT_SST2 if r["id"] in {x["id"] for x in sst2}]
    phases = {"sst2": {"zeroshot": (zs_sst2, sst2_metrics), "finetuned": (sst2, sst2_metrics)},
              "squad_v2": {"zeroshot": (ZEROSHOT_SQUAD, squad_metrics), "finetuned": (squad, squad_metrics)}}
    for task, by_phase in phases.items():
        for phase, (records, metric_fn) in by_phase.items():
            (repo / "metrics" / task).mkdir(parents=True, exist_ok=True)
            (repo / "predictions" / task / phase).mkdir(parents=True, exist_ok=True)
            (repo / "metrics" / task / f"{phase}.json").write_text(
                json.dumps({"run": run or RUN, "validation": metric_fn(records)}))
            (repo / "predictions" / task / phase / "validation.json").write_text(json.dumps(records))
            (repo / "predictions" / task / phase / "run.json").write_text(
                json.dumps({**(run or RUN), "train_label_counts": {"0": 10, "1": 30}}))


def params_with(**changes) -> dict:
    """PARAMS with dotted keys set: params_with(**{"data.train_examples.sst2": 100, "seed": 2})."""
    params = json.loads(json.dumps(PARAMS))
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = params
        for key in parents:
            node = node[key]
        node[last] = value
    return params


def save_experiment(repo: Path, baseline: str, name: str, params: dict, sst2: list[dict], squad: list[dict],
                    **kwargs) -> str:
    """A commit on `baseline` holding this run's files, under DVC's experiment ref for `name`; the commit."""
    git(repo, "checkout", "-q", "--detach", baseline)
    write_run(repo, params, sst2, squad, **kwargs)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", name)
    commit = git(repo, "rev-parse", "HEAD")
    git(repo, "update-ref", f"refs/exps/{baseline[:2]}/{baseline[2:]}/{name}", commit)
    return commit


SWEEP = {  # name -> (sst2 training size, seed, SST-2 accuracy rate, SQuAD skill): sizes 100 (2 seeds), 200 (3), 800 (1)
    "n100-s1": (100, 1, 0.60, 0.30), "n100-s2": (100, 2, 0.65, 0.35),
    "n200-s1": (200, 1, 0.70, 0.40), "n200-s2": (200, 2, 0.75, 0.45), "n200-s3": (200, 3, 0.72, 0.42),
    "n800-s1": (800, 1, 0.90, 0.60),
}


def sweep_run(name: str) -> tuple[dict, list[dict], list[dict]]:
    size, seed, rate, skill = SWEEP[name]
    index = list(SWEEP).index(name)
    params = params_with(**{"data.train_examples.sst2": size, "seed": seed, "data.draw_seed": seed})
    return params, sst2_records(correct(index, rate)), squad_records(index, skill)


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """HEAD (main): a run at sst2 size 400; the SWEEP experiments on it; on a second baseline (branch `other`)
    experiments that do not belong on one curve with them."""
    repo = tmp_path_factory.mktemp("curve")
    git(repo, "init", "-q")
    write_run(repo, PARAMS, sst2_records(correct(50, 0.8)), squad_records(50, 0.5))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "baseline")
    head = git(repo, "rev-parse", "HEAD")
    for name in SWEEP:
        save_experiment(repo, head, name, *sweep_run(name))
    git(repo, "checkout", "-q", "-b", "other", head)
    git(repo, "commit", "-q", "--allow-empty", "-m", "another baseline")
    other = git(repo, "rev-parse", "HEAD")
    params, sst2, squad = sweep_run("n100-s1")
    save_experiment(repo, other, "fewer-examples", params_with(**{"data.train_examples.sst2": 100,
                                                                  "data.validation_examples.sst2": 40}),
                    sst2[:40], squad)
    save_experiment(repo, other, "bf16", params_with(**{"data.train_examples.sst2": 100, "model.dtype": "bfloat16"}),
                    sst2, squad, run={**RUN, "dtype": "bfloat16"})
    save_experiment(repo, other, "other-zeroshot", params_with(**{"data.train_examples.sst2": 100}), sst2, squad,
                    zeroshot_sst2=sst2_records(correct(98, 0.5)))
    save_experiment(repo, other, "stale-zeroshot", params_with(**{"data.train_examples.sst2": 100}), sst2, squad,
                    zeroshot_sst2=ZEROSHOT_SST2[:40])  # e.g. `dvc exp run eval@sst2 -S eval.limit=..`: one phase
    save_experiment(repo, other, "other-lr", params_with(**{"data.train_examples.sst2": 100, "lr": 1e-4}),
                    sst2, squad)
    git(repo, "checkout", "-q", "main")
    return repo


def read(repo: Path, rev: str, path: str):
    return json.loads(git(repo, "show", f"{rev}:{path}"))


def sweep_values(repo: Path, task: str, metric: str) -> dict[str, float]:
    return {name: read(repo, f"refs/exps/{git(repo, 'rev-parse', 'main')[:2]}/"
                             f"{git(repo, 'rev-parse', 'main')[2:]}/{name}", f"metrics/{task}/finetuned.json")
            ["validation"][metric] for name in SWEEP}


# ----------------------------------------------------------------------------------------------- the tests
def test_points_group_runs_and_carry_the_metrics_files_values(repo):
    curve = C.build_curve(repo, "data.train_examples.sst2", "sst2", "accuracy", resamples=RESAMPLES)
    values = sweep_values(repo, "sst2", "accuracy")
    assert [point.x for point in curve.points] == [100, 200, 800]
    assert [len(point.runs) for point in curve.points] == [2, 3, 1]
    for point in curve.points:
        names = [run.rev.name for run in point.runs]
        assert names == sorted(n for n in SWEEP if SWEEP[n][0] == point.x)
        assert point.values == [values[name] for name in names]
        assert point.mean == pytest.approx(np.mean(point.values), abs=1e-12)
        assert point.sd == (pytest.approx(np.std(point.values, ddof=1), abs=1e-12) if len(names) > 1 else None)
        assert (point.min, point.max) == (min(point.values), max(point.values))
        assert {run.seed for run in point.runs} == {SWEEP[name][1] for name in names}
    assert curve.zeroshot == read(repo, "main", "metrics/sst2/zeroshot.json")["validation"]["accuracy"]
    assert curve.log_x  # 100 .. 800 spans 8x
    assert curve.n == SST2_N and curve.unit == "example"
    # majority class of the training label counts (1 = positive: 2/3 of the examples), the same in every run
    assert curve.baseline == pytest.approx(2 / 3)
    assert "majority class" in curve.baseline_name


def _aligned(repo: Path, rev: str, task: str, phase: str, order: list[dict]) -> list[dict]:
    by_id = {r["id"]: r for r in read(repo, rev, f"predictions/{task}/{phase}/validation.json")}
    return [by_id[r["id"]] for r in order]


@pytest.mark.parametrize("task_name, metric", [("sst2", "accuracy"), ("squad_v2", "f1")])
def test_intervals_are_the_runs_own_intervals_averaged(repo, task_name, metric):
    """A run's interval is stats' single-phase interval of its records (in sorted-id order): SST-2's 60 sentences
    by the bootstrap, SQuAD v2's 12 articles by the cluster jackknife; a point's is the mean of its runs' bounds."""
    curve = C.build_curve(repo, "data.train_examples.sst2", task_name, metric, resamples=RESAMPLES, seed=3)
    task = get_task(task_name)
    head = git(repo, "rev-parse", "main")
    order = sorted(read(repo, "main", f"predictions/{task_name}/zeroshot/validation.json"), key=lambda r: str(r["id"]))
    unit = stats.resampling(task, order, RESAMPLES)
    assert (curve.unit, unit.method) == (("example", stats.BOOTSTRAP) if task_name == "sst2" else
                                         ("article", stats.JACKKNIFE))
    assert curve.method == unit.interval()
    for point in curve.points:
        for run in point.runs:
            records = _aligned(repo, f"refs/exps/{head[:2]}/{head[2:]}/{run.rev.name}", task_name, "finetuned", order)
            statistic = prediction_statistic(task, records, [metric])
            if unit.method == stats.BOOTSTRAP:
                direct = paired_bootstrap(statistic, statistic, len(records), resamples=RESAMPLES, seed=3)[metric]
            else:
                direct = stats.paired_jackknife(statistic, statistic, len(records), clusters=unit.labels)[metric]
            assert run.interval == direct.first_ci
            assert run.value == pytest.approx(direct.first, abs=1e-9)
            assert run.interval.low <= run.value <= run.interval.high
        assert point.interval.low == pytest.approx(np.mean([run.interval.low for run in point.runs]), abs=1e-12)
        assert point.interval.high == pytest.approx(np.mean([run.interval.high for run in point.runs]), abs=1e-12)
    zeroshot = _aligned(repo, "main", task_name, "zeroshot", order)
    statistic = prediction_statistic(task, zeroshot, [metric])
    assert curve.zeroshot_interval == stats.paired_intervals(statistic, statistic, len(zeroshot), unit,
                                                             seed=3)[metric].first_ci
    if task_name == "squad_v2":  # always abstain: F1 = the unanswerable share (every third question), in percent
        assert curve.baseline == pytest.approx(100 / 3)


def test_writes_table_png_and_json_through_the_cli(repo, tmp_path, capsys):
    out = tmp_path / "curves" / "sst2"
    assert main(["curve", "--param", "data.train_examples.sst2", "--task", "sst2", "--metric", "accuracy",
                 "--repo", str(repo), "--out", str(out), "--resamples", str(RESAMPLES), "--include-workspace"]) == 0
    printed = capsys.readouterr().out
    assert (out / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (out / "curve.md").read_text()
    assert table in printed
    assert "| 400 | 1 |" in table and "| 200 | 3 |" in table  # HEAD's own run (size 400) is a point now
    data = json.loads((out / "curve.json").read_text())
    assert set(data) == {"version", "task", "split", "metric", "scale", "param", "examples", "run", "interval",
                         "spread", "log_x", "notes", "reference", "points"}
    assert (data["task"], data["split"], data["metric"], data["param"]) == \
        ("sst2", "validation", "accuracy", "data.train_examples.sst2")
    assert [p["value"] for p in data["points"]] == [100, 200, 400, 800]
    assert [p["runs"] for p in data["points"]] == [2, 3, 1, 1]
    values = sweep_values(repo, "sst2", "accuracy")
    head = git(repo, "rev-parse", "main")
    for point in data["points"]:
        assert set(point) == {"value", "runs", "mean", "sd", "min", "max", "low", "high", "delta_zeroshot",
                              "experiments"}
        for exp in point["experiments"]:
            assert set(exp) == {"name", "commit", "ref", "seed", "draw_seed", "value", "low", "high", "baseline"}
            if exp["name"] == "HEAD":
                assert exp["commit"] == head and exp["ref"] is None
                assert exp["value"] == read(repo, "main", "metrics/sst2/finetuned.json")["validation"]["accuracy"]
            else:
                assert exp["value"] == values[exp["name"]]
                assert exp["ref"] == f"refs/exps/{head[:2]}/{head[2:]}/{exp['name']}"
                assert exp["commit"] == git(repo, "rev-parse", exp["ref"])
            assert exp["low"] <= exp["value"] <= exp["high"]
    assert data["reference"]["zeroshot"]["low"] <= data["reference"]["zeroshot"]["value"]
    assert data["examples"]["n"] == SST2_N and data["log_x"] is True


def test_experiment_names_and_the_workspace_select_the_runs(repo):
    curve = C.build_curve(repo, "data.train_examples.sst2", "sst2", experiments=["n100-s1", "n800-s1"],
                          resamples=RESAMPLES)
    assert [[run.rev.name for run in point.runs] for point in curve.points] == [["n100-s1"], ["n800-s1"]]
    assert curve.metric == "accuracy"  # the task's first headline metric
    lin = C.build_curve(repo, "data.train_examples.sst2", "sst2", experiments=["n100-s1", "n200-s1"],
                        resamples=RESAMPLES)
    assert not lin.log_x  # 2x: linear
    assert lin.notes == []


def test_a_param_that_is_not_swept_must_not_differ(repo):
    with pytest.raises(ConfigError, match=r"differ in more than --param data.train_examples.sst2.*\blr: 0.0003 in "
                                          r"n100-s1; 0.0001 in other-lr"):
        C.build_curve(repo, "data.train_examples.sst2", "sst2", experiments=["n100-s1", "other-lr"])
    with pytest.raises(ConfigError, match=r"lr: .* in other-lr"):  # --all-commits takes every baseline's
        C.build_curve(repo, "data.train_examples.sst2", "sst2", all_commits=True)
    # the key the curve sweeps may differ, as may the seeds; a mapping is not a number
    with pytest.raises(ConfigError, match=r"no number at --param data.train_examples .*data.train_examples.s"):
        C.build_curve(repo, "data.train_examples", "sst2", experiments=["n100-s1"])
    with pytest.raises(ConfigError, match=r"--param model.name is 'tiny-llama', not a number"):
        C.build_curve(repo, "model.name", "sst2", experiments=["n100-s1"])


def test_different_examples_are_refused(repo):
    with pytest.raises(ConfigError, match=r"data.validation_examples.sst2: null in n100-s1; 40 in fewer-examples"):
        C.build_curve(repo, "data.train_examples.sst2", "sst2", experiments=["n100-s1", "fewer-examples"])
    with pytest.raises(DataError) as info:  # the params check waived: the examples still differ
        C.build_curve(repo, "data.train_examples.sst2", "sst2", experiments=["n100-s1", "n200-s1", "fewer-examples"],
                      ignore=["data.validation_examples"])
    message = str(info.value)
    assert "did not score the same sst2 validation examples" in message
    assert f"{SST2_N} examples" in message and "n100-s1, n200-s1" in message and "40 examples" in message
    assert "only in n100-s1: ['40', '41', '42']" in message


def test_phases_scored_on_different_examples_are_refused(repo):
    with pytest.raises(DataError, match=r"stale-zeroshot: predictions/sst2/zeroshot/validation.json and "
                                        r"predictions/sst2/finetuned/validation.json hold different examples, so one "
                                        r"phase is stale: rerun both phases there \(dvc exp run score@sst2"):
        C.build_curve(repo, "data.train_examples.sst2", "sst2", experiments=["stale-zeroshot"])


def test_another_dtype_is_refused(repo):
    with pytest.raises(ConfigError, match=r"model.dtype: \"float32\" in n100-s1; \"bfloat16\" in bf16"):
        C.build_curve(repo, "data.train_examples.sst2", "sst2", experiments=["n100-s1", "bf16"])
    with pytest.raises(DataError, match=r"different dtype .*\"float32\" in n100-s1 \(zeroshot\), n100-s1 "
                                        r"\(finetuned\); \"bfloat16\" in bf16 \(zeroshot\), bf16 \(finetuned\)"):
        C.build_curve(repo, "data.train_examples.sst2", "sst2", experiments=["n100-s1", "bf16"],
                      ignore=["model.dtype"])


def test_different_zeroshot_scores_are_refused(repo):
    with pytest.raises(DataError, match=r"zero-shot sst2 validation scores differ .*accuracy: .* in n100-s1; .* "
                                        r"in other-zeroshot"):
        C.build_curve(repo, "data.train_examples.sst2", "sst2", experiments=["n100-s1", "other-zeroshot"])
    # the same experiments on SQuAD v2, whose zero-shot files agree: a curve
    curve = C.build_curve(repo, "data.train_examples.sst2", "squad_v2", experiments=["n100-s1", "other-zeroshot"],
                          resamples=RESAMPLES)
    assert [len(point.runs) for point in curve.points] == [2]
    assert curve.notes == ["data.train_examples.sst2 = 100: n100-s1, other-zeroshot have the same seed 1, "
                           "data.draw_seed 1 (reruns of one run, not independent seeds: they narrow the sd)"]


def test_errors_reach_the_cli_as_one_paragraph(repo, tmp_path, capsys):
    assert main(["curve", "--param", "lr", "--task", "sst2", "--repo", str(repo), "--out", str(tmp_path),
                 "--experiments", "n100-s1", "no-such-exp"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no-such-exp" in err and "Traceback" not in err
    assert not (tmp_path / "curve.json").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q")
    git(empty, "commit", "-q", "--allow-empty", "-m", "nothing")
    with pytest.raises(ConfigError, match="no DVC experiments on HEAD"):
        C.build_curve(empty, "lr", "sst2")


def test_params_read_as_dvc_writes_them():
    """`dvc exp run -S lr=2e-5` writes `lr: 2e-05`, which PyYAML (YAML 1.1) reads as a string: a number here."""
    flat = C.flatten(yaml.safe_load("lr: 2e-05\nmodel: {name: x1e5, tiny: {}}\nlist: [1e-3, 2]\nseed: 1\n"))
    assert flat == {"lr": 2e-05, "model.name": "x1e5", "model.tiny": {}, "list": [1e-3, 2], "seed": 1}
    C.check_one_param_varies("lr", {"a": C.flatten({"lr": "2e-05", "wd": "1e-2"}),
                                    "b": C.flatten({"lr": 3e-4, "wd": 0.01})})


# ------------------------------------------------------------------------------ a real sweep, tiny model
TINY_SWEEP = {"n30-s1": (30, 1), "n30-s2": (30, 2), "n60-s2": (60, 2)}  # name -> (SST-2 training examples, seed)


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory) -> Path:
    """A copy of the session's small built repository (tiny model; its HEAD trained on 60 SST-2 examples, seed 1)
    with a training-size sweep as DVC experiments on HEAD: 30 examples (seeds 1, 2) and 60 (seed 2), each seed with
    its own training draw; the SST-2 stages only (`dvc exp run score@sst2`: split, train, eval, score)."""
    from repo_helpers import copy_built, run

    repo = copy_built(tmp_path_factory, tmp_path_factory.mktemp("tiny_sweep") / "repo")
    for name, (size, seed) in TINY_SWEEP.items():
        run(["dvc", "exp", "run", "score@sst2", "-n", name, "-S", f"data.train_examples.sst2={size}",
             "-S", f"seed={seed}", "-S", f"data.draw_seed={seed}"], repo)
    return repo


def test_real_dvc_sweep_on_the_tiny_model(tiny_sweep, tmp_path):
    """The curve of a real sweep, HEAD included: the points carry what `dvc exp show` reports for each experiment,
    and the zero-shot phase, scored once on HEAD, is every experiment's."""
    from repo_helpers import run

    repo = tiny_sweep
    curve = C.build_curve(repo, "data.train_examples.sst2", "sst2", "accuracy", include_workspace=True,
                          resamples=RESAMPLES)
    files = C.write_curve(curve, tmp_path / "out")
    assert [path.stat().st_size > 0 for path in files] == [True, True, True]
    assert [point.x for point in curve.points] == [30, 60] and not curve.log_x
    assert [[run.rev.name for run in point.runs] for point in curve.points] == [["n30-s1", "n30-s2"],
                                                                               ["HEAD", "n60-s2"]]
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo).strip().splitlines()[-1])
    accuracy = {rev.get("name") or "HEAD": rev["data"]["metrics"]["metrics/sst2/finetuned.json"]["data"]["validation"]
                ["accuracy"] for baseline in shown for rev in [baseline, *[r for group in baseline.get("experiments")
                                                                       or [] for r in group["revs"]]]}
    data = json.loads((tmp_path / "out" / "curve.json").read_text())
    assert {exp["name"]: exp["value"] for point in data["points"] for exp in point["experiments"]} == \
        {name: accuracy[name] for name in [*TINY_SWEEP, "HEAD"]}
    assert {exp["name"]: (exp["seed"], exp["draw_seed"]) for point in data["points"] for exp in point["experiments"]} \
        == {"HEAD": (1, 1), **{name: (seed, seed) for name, (_, seed) in TINY_SWEEP.items()}}
    assert [p["runs"] for p in data["points"]] == [2, 2]
    head_zeroshot = read(repo, "HEAD", "metrics/sst2/zeroshot.json")["validation"]["accuracy"]
    assert data["reference"]["zeroshot"]["value"] == head_zeroshot
    assert (tmp_path / "out" / "curve.md").read_text().count("\n| 30 | 2 |") == 1


@pytest.mark.slow
def test_real_dvc_experiment_on_other_examples_is_refused(tiny_sweep):
    """n60-s2 once more, both phases scored on 10 of the 12 examples (eval.limit): refused beside the sweep."""
    from repo_helpers import run

    repo = tiny_sweep  # its workspace holds n60-s2's params: nothing is retrained
    run(["dvc", "exp", "run", "score@sst2", "-n", "fewer", "-S", "eval.limit=10"], repo)
    with pytest.raises(ConfigError, match="eval.limit: 12 in n60-s2; 10 in fewer"):
        C.build_curve(repo, "data.train_examples.sst2", "sst2", experiments=["n60-s2", "fewer"])
    with pytest.raises(DataError, match=r"did not score the same sst2 validation examples.*12 examples .* in n60-s2; "
                                        r"10 examples .* in fewer"):
        C.build_curve(repo, "data.train_examples.sst2", "sst2", experiments=["n60-s2", "fewer"],
                      ignore=["eval.limit"])
