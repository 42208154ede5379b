"""`tuneval eval` builds its evaluation settings from params.yaml (flags override, never silently ignored), and
scores a seeded draw, saying which rows it scores."""

from __future__ import annotations

import pytest

from tuneval import cli


@pytest.fixture
def captured(monkeypatch):
    """Run cmd_eval up to the engine: the settings and rows it would score, without a model."""
    import tuneval.models.loading
    import tuneval.scoring.engine

    seen: dict = {}

    def fake_evaluate(task, model, tokenizer, rows, train_rows, settings):
        seen.update(settings=settings, ids=[r["id"] for r in rows])
        return {"n": len(rows)}, []

    monkeypatch.setattr(tuneval.scoring.engine, "evaluate", fake_evaluate)
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


def test_limit_is_a_seeded_draw_not_the_head(captured, write_params, repo_root, monkeypatch):
    monkeypatch.chdir(repo_root.parent)
    path = write_params()
    cli.main(["eval", "--model", "m", "--task", "sst2", "--params", str(path), "--limit", "20"])
    first = captured["ids"]
    cli.main(["eval", "--model", "m", "--task", "sst2", "--params", str(path), "--limit", "20"])
    assert captured["ids"] == first, "the draw is seeded"
    assert first != [str(i) for i in range(20)], "the draw is not the head of the file"
