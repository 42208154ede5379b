"""`tuneval eval` builds its evaluation settings from params.yaml (flags override, never silently ignored), and
scores a seeded draw, saying which rows it scores."""

from __future__ import annotations

import pytest

from tuneval import cli


@pytest.fixture
def captured(monkeypatch):
    """Run cmd_eval up to the engine: the settings and rows it would score, without a model."""
    import tuneval.models.loading
    import tuneval.scoring.parallel
    import tuneval.scoring.scores

    seen: dict = {}

    def fake_predict(task, model, tokenizer, model_path, dtype, rows, train_rows, settings, num_processes):
        seen.update(settings=settings, ids=[r["id"] for r in rows], dtype=dtype, num_processes=num_processes)
        return []

    monkeypatch.setattr(tuneval.scoring.parallel, "predict_parallel", fake_predict)
    monkeypatch.setattr(tuneval.scoring.parallel, "check_processes", lambda n, key="": None)  # any host
    monkeypatch.setattr(tuneval.scoring.scores, "score", lambda task, predictions: {"n": len(predictions)})
    monkeypatch.setattr(tuneval.models.loading, "load_model", lambda *a, **k: None)
    monkeypatch.setattr(tuneval.models.loading, "load_tokenizer", lambda *a, **k: None)
    monkeypatch.setattr(cli, "resolve_model_arg", lambda model, params: model)
    return seen


def test_eval_settings_come_from_params(captured, write_params, repo_root, monkeypatch, capsys):
    monkeypatch.chdir(repo_root.parent)  # no pipeline outputs here: the raw sample is read
    path = write_params(eval={"num_fewshot": 2, "chat_template": True, "max_new_tokens": 7})
    assert cli.main(["eval", "--model", "m", "--task", "sst2", "--params", str(path), "--limit", "5"]) == 0
    settings = captured["settings"]
    assert (settings.num_fewshot, settings.chat_template, settings.max_new_tokens) == (2, True, 7)
    assert "scoring 5 of 872 rows" in capsys.readouterr().out
    assert cli.main(["eval", "--model", "m", "--task", "sst2", "--params", str(path), "--limit", "5",
                     "--num-fewshot", "0", "--no-chat-template"]) == 0
    assert (captured["settings"].num_fewshot, captured["settings"].chat_template) == (0, False)


def test_processes_and_dtype_come_from_params_unless_a_flag_says_otherwise(captured, write_params, repo_root,
                                                                           monkeypatch):
    monkeypatch.chdir(repo_root.parent)
    path = write_params(eval={"num_processes": 3}, model={"dtype": "bfloat16"})
    assert cli.main(["eval", "--model", "m", "--task", "sst2", "--params", str(path), "--limit", "5"]) == 0
    assert (captured["num_processes"], captured["dtype"]) == (3, "bfloat16")
    assert cli.main(["eval", "--model", "m", "--task", "sst2", "--params", str(path), "--limit", "5",
                     "--num-processes", "1", "--dtype", "float32"]) == 0
    assert (captured["num_processes"], captured["dtype"]) == (1, "float32")


def test_limit_is_a_seeded_draw_not_the_head(captured, write_params, repo_root, monkeypatch):
    monkeypatch.chdir(repo_root.parent)
    path = write_params()
    cli.main(["eval", "--model", "m", "--task", "sst2", "--params", str(path), "--limit", "20"])
    first = captured["ids"]
    cli.main(["eval", "--model", "m", "--task", "sst2", "--params", str(path), "--limit", "20"])
    assert captured["ids"] == first, "the draw is seeded"
    assert first != [str(i) for i in range(20)], "the draw is not the head of the file"


@pytest.mark.parametrize(("flag", "value"), [("--num-processes", "0"), ("--batch-size", "0"), ("--limit", "0"),
                                             ("--num-fewshot", "-1")])
def test_a_meaningless_flag_value_is_refused_before_any_work(flag, value, capsys):
    assert cli.main(["eval", "--model", "no/such-model", "--task", "sst2", flag, value]) == 1
    err = capsys.readouterr().err
    assert f"{flag} {value}: expected an integer >= " in err and "Could not load" not in err


def test_more_processes_than_this_host_runs_is_refused_before_loading(capsys):
    assert cli.main(["eval", "--model", "no/such-model", "--task", "sst2", "--num-processes", "4096"]) == 1
    err = capsys.readouterr().err
    assert "--num-processes = 4096 but this" in err and "Could not load" not in err
