"""Data-parallel evaluation (eval.num_processes): the shards follow one batch plan, every batch is run by exactly
one process, and the gathered predictions are byte-identical to a single process (engine level, then the
pipeline's predictions files and metrics)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest
import yaml
from repo_helpers import PROMPT_S, copy_built, env, gone, run, running, signal_exit
from test_engine import SHAPE, _shared_context_rows, _sst2_rows

from tuneval.config import load_params
from tuneval.errors import LaunchError
from tuneval.models.loading import load_model, load_tokenizer
from tuneval.models.tiny import build_tiny_model
from tuneval.scoring import engine as E
from tuneval.scoring.parallel import predict_parallel
from tuneval.tasks import demonstration, get_task
from tuneval.tasks import prompting as P

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny-gemma2")
    texts = [demonstration(get_task("sst2"), r) for r in _sst2_rows()]
    texts += [demonstration(get_task("squad_v2"), r) for r in _shared_context_rows()]
    model_cfg = dataclasses.replace(load_params(REPO / "params.yaml").model, name="tiny-gemma2", tiny=SHAPE)
    build_tiny_model(model_cfg, texts * 3, seed=1, out_dir=out)
    return out, load_tokenizer(out), load_model(out, dtype="float32", device="cpu")


def _settings(batch_size: int) -> E.EvalSettings:
    return E.EvalSettings(batch_size=batch_size, max_prompt_tokens=256, max_new_tokens=5, num_fewshot=0, seed=1,
                          chat_template=False)


def _rows(task_name: str) -> list[dict]:
    return _sst2_rows(24) if task_name == "sst2" else _shared_context_rows()


@pytest.mark.parametrize("world", [2, 3])
@pytest.mark.parametrize("task_name", ["sst2", "squad_v2"])
def test_shards_split_the_work_and_merge_to_the_single_process_outputs(tiny, task_name, world):
    _, tok, model = tiny
    task, rows = get_task(task_name), _rows(task_name)
    whole = E.predict_raw(task, model, tok, rows, [], _settings(4))
    shards = [E.predict_raw(task, model, tok, rows, [], _settings(4), E.Shard(rank, world)) for rank in range(world)]
    for key, column in whole.items():  # every entry computed by exactly one shard
        owners = [[k for k, shard in enumerate(shards) if shard[key][i] is not None] for i in range(len(column))]
        assert all(len(o) == 1 for o in owners), owners
        assert len({o[0] for o in owners}) > 1, "the work was not spread over the processes"
    assert E.merge_raw(shards) == whole
    assert E.records_from(task, rows, E.merge_raw(shards)) == E.predict(task, model, tok, rows, [], _settings(4))


def test_a_context_s_questions_stay_in_one_shard(tiny):
    """SQuAD questions on one context are decoded by the process that prefilled their shared prefix."""
    _, tok, model = tiny
    task, rows = get_task("squad_v2"), _shared_context_rows()
    shards = [E.predict_raw(task, model, tok, rows, [], _settings(4), E.Shard(rank, 3)) for rank in range(3)]
    owner = {row["id"]: next(k for k, s in enumerate(shards) if s["texts"][i] is not None)
             for i, row in enumerate(rows)}
    by_context: dict[str, set[int]] = {}
    for row in rows:
        by_context.setdefault(row["context"], set()).add(owner[row["id"]])
    assert all(len(ranks) == 1 for ranks in by_context.values()), by_context
    assert len({next(iter(r)) for r in by_context.values()}) > 1  # and the contexts are spread over processes


def test_multi_token_choices_may_split_a_row_across_shards_and_still_merge(tiny):
    """With multi-token label words each (prompt, choice) is its own request: a row's choices can land in batches
    of different shards, and the merge takes each choice from the shard that scored it."""
    _, tok, model = tiny
    prompts = [P.build_prompt(get_task("sst2"), r, [], tok, 256) for r in _sst2_rows(9)]
    requests = [(p, P.continuation_ids(tok, c)) for p in prompts for c in (" very positive", " negative")]
    whole = E.loglikelihoods(model, tok, requests, batch_size=4)
    parts = [E.loglikelihoods(model, tok, requests, batch_size=4, shard=E.Shard(rank, 2)) for rank in range(2)]
    rows = [[parts[k][2 * i : 2 * i + 2] for i in range(len(prompts))] for k in range(2)]
    split_rows = [i for i in range(len(prompts)) if None in rows[0][i] and rows[0][i] != [None, None]]
    assert split_rows, "the control: some row has one choice in each shard"
    merged = E.merge_raw([{"scores": rows[0]}, {"scores": rows[1]}])["scores"]
    assert merged == [whole[2 * i : 2 * i + 2] for i in range(len(prompts))]


@pytest.mark.parametrize("task_name", ["sst2", "squad_v2"])
def test_two_processes_give_byte_identical_predictions(tiny, task_name):
    """Two real processes (this one and a child that loads the model itself) against one."""
    path, tok, model = tiny
    task, rows = get_task(task_name), _rows(task_name)
    single = E.predict(task, model, tok, rows, [], _settings(4))
    double = predict_parallel(task, model, tok, path, "float32", rows, [], _settings(4), num_processes=2)
    assert json.dumps(double, sort_keys=True) == json.dumps(single, sort_keys=True)


def test_more_processes_than_cores_or_gpus_is_refused(monkeypatch):
    import os

    import torch

    from tuneval.errors import ConfigError
    from tuneval.scoring.parallel import check_processes

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    check_processes(1)
    check_processes(2)
    with pytest.raises(ConfigError, match=r"eval.num_processes = 3 but this CPU host has 2 core\(s\)"):
        check_processes(3)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    check_processes(2)
    with pytest.raises(ConfigError, match=r"eval.num_processes = 3 but this machine has 2 GPU\(s\)"):
        check_processes(3)


def test_a_failing_rank_stops_with_a_clear_error_and_leaves_nothing_running(tiny, tmp_path):
    """A real rank that cannot load its model: the run stops with its status and the last line of its error."""
    _, tok, model = tiny
    with pytest.raises(LaunchError, match="evaluation process 1 of 2 exited with status 1: ") as excinfo:
        predict_parallel(get_task("sst2"), model, tok, tmp_path / "no-model", "float32", _sst2_rows(8), [],
                         _settings(4), num_processes=2)
    assert "no-model" in str(excinfo.value) and "\n" not in str(excinfo.value), str(excinfo.value)
    assert not psutil.Process().children(), "no rank may be left running"


# ---------------------------------------------------------------------------------- supervision of the ranks
# The ranks' command is swapped for a sleep loop (its rank as last argument) and rank 0's share for a busy loop:
# what is tested is predict_parallel's supervision, in seconds, without a model.
LOOP = "import time\nwhile True: time.sleep(0.1)"


def _busy_share(*args, **kwargs):
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.05)
    raise AssertionError("rank 0's share was never interrupted")


@pytest.fixture
def sleeping_ranks(monkeypatch):
    from tuneval.scoring import parallel

    monkeypatch.setattr(parallel, "predict_raw", _busy_share)
    monkeypatch.setattr(parallel, "_rank_command", lambda spec, rank: [sys.executable, "-c", LOOP, str(rank)])


def _ranks_of(pid: int, count: int, timeout: float = 30) -> dict[int, psutil.Process]:
    """rank -> process, once `pid` has started its `count` sleeping ranks."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(psutil.Error):
            ranks = {int(p.cmdline()[-1]): p for p in psutil.Process(pid).children()}
            if len(ranks) == count:
                return ranks
        time.sleep(0.05)
    raise AssertionError(f"process {pid} did not start {count} ranks within {timeout} s")


def test_a_killed_rank_ends_the_run_at_once_with_its_error(sleeping_ranks):
    """Rank 2 of 3 is SIGKILLed while rank 0 is in the middle of its share: the run ends within seconds, naming
    it, and the other rank is stopped."""
    ranks = {}

    def kill_rank_2():
        ranks.update(_ranks_of(os.getpid(), 2))
        os.kill(ranks[2].pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_rank_2)
    start = time.monotonic()
    killer.start()
    try:
        with pytest.raises(LaunchError, match=r"^evaluation process 2 of 3 was killed by SIGKILL \(its output is "
                                              r"above; every other evaluation process was stopped\)"):
            predict_parallel(get_task("sst2"), None, None, "unused", "float32", _sst2_rows(8), [], _settings(4),
                             num_processes=3)
    finally:
        killer.join()
    assert time.monotonic() - start < PROMPT_S
    assert all(gone(p) for p in ranks.values()) and not psutil.Process().children()


@pytest.mark.parametrize("num_processes", [1, 2])
def test_the_timeout_stops_every_rank(sleeping_ranks, num_processes):
    start = time.monotonic()
    with pytest.raises(LaunchError, match=rf"^evaluating 8 sst2 examples in {num_processes} process\(es\) did not "
                                          r"finish within 1 s; every process was stopped \(timeout_s = 1"):
        predict_parallel(get_task("sst2"), None, None, "unused", "float32", _sst2_rows(8), [], _settings(4),
                         num_processes=num_processes, timeout_s=1)
    assert time.monotonic() - start < PROMPT_S
    assert not psutil.Process().children()


PARENT = textwrap.dedent("""
    import signal, sys, time
    from tuneval.scoring import parallel
    from tuneval.scoring.engine import EvalSettings
    from tuneval.tasks import get_task

    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when the test runner ignores SIGINT

    def busy(*args, **kwargs):
        while True:
            time.sleep(0.05)

    parallel.predict_raw = busy
    parallel._rank_command = lambda spec, rank: [sys.executable, "-c", %r, str(rank)]
    rows = [{"id": str(i), "sentence": "a film", "label": i %% 2} for i in range(8)]
    settings = EvalSettings(batch_size=4, max_prompt_tokens=256, max_new_tokens=5, num_fewshot=0, seed=1,
                            chat_template=False)
    parallel.predict_parallel(get_task("sst2"), None, None, "unused", "float32", rows, [], settings, 3)
""") % LOOP


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_evaluating_process_stops_every_rank(signum):
    with running([sys.executable, "-c", PARENT], cwd=REPO, env=env()) as parent:
        ranks = _ranks_of(parent.pid, 2)
        signal_exit(parent, signum)
    assert [rank for rank, p in ranks.items() if not gone(p)] == [], "no rank may outlive the evaluation"


def test_the_pipeline_with_two_eval_processes_writes_the_same_files(tmp_path_factory, tmp_path):
    """eval.num_processes = 2 on both tasks and both phases: every predictions file and metric is byte-identical
    to the single-process run that built the repository."""
    repo = copy_built(tmp_path_factory, tmp_path / "repo")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["eval"]["num_processes"] = 2
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    stages = [f"{stage}@{task}" for stage in ("zeroshot_eval", "eval") for task in params["tasks"]]
    out = run(["dvc", "repro", "--single-item", *stages], repo)
    assert out.count("in 2 processes") == len(stages) * len(params["eval"]["splits"]), out[-3000:]
    assert run(["git", "status", "--porcelain", "predictions", "metrics"], repo).strip() == ""


def test_the_eval_command_passes_timeout_on_and_refuses_one_that_is_not_positive(monkeypatch, capsys):
    from tuneval import cli
    from tuneval.models import loading
    from tuneval.scoring import parallel

    argv = ["eval", "--model", "unused", "--task", "sst2", "--params", str(REPO / "params.yaml")]
    assert cli.main([*argv, "--timeout", "0"]) == 1
    assert capsys.readouterr().err == "error: --timeout 0: expected a number of seconds > 0\n"

    seen = []

    def predict_parallel(*args, **kwargs):
        seen.append(kwargs.get("timeout_s", parallel.DEFAULT_TIMEOUT_S))
        raise LaunchError("stop here")

    monkeypatch.setattr(cli, "_rows_for", lambda *args: (_sst2_rows(4), [], "test rows"))
    monkeypatch.setattr(loading, "load_tokenizer", lambda *args, **kwargs: None)
    monkeypatch.setattr(loading, "load_model", lambda *args, **kwargs: None)
    monkeypatch.setattr(parallel, "predict_parallel", predict_parallel)
    assert cli.main([*argv, "--timeout", "90"]) == 1 and cli.main(argv) == 1
    assert seen == [90.0, parallel.DEFAULT_TIMEOUT_S] and "error: stop here" in capsys.readouterr().err
