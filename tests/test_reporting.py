"""The report: rows per task headline metric (the task's own list), 95% intervals from the predictions, the README
block, report/summary.{md,png,json}; and that no module but the task YAML decides which metrics are reported."""

from __future__ import annotations

import ast
import dataclasses
import json
import re
from pathlib import Path

import pytest
from test_stats import squad_records, sst2_records

from tuneval import pipeline
from tuneval.errors import DataError
from tuneval.evaluation import score
from tuneval.io import write_json
from tuneval.reporting import README_END, README_START, compare_split, readme_block, table_lines, write_report
from tuneval.tasks import MetricSpec, Task, get_task

REPO = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SST2, SQUAD = get_task("sst2"), get_task("squad_v2")
RUN = {"num_fewshot": 0, "prompt_sha": "0123456789ab", "dtype": "float32", "chat_template": False}


def with_headline(task: Task, headline: list[str]) -> Task:
    """The task with another headline list (and no hub names for the dropped keys)."""
    hub = {key: value for key, value in task.metrics.hub.items() if key in headline}
    return dataclasses.replace(task, metrics=MetricSpec(scale=task.metrics.scale, headline=headline, hub=hub))


def phases(task: Task, zeroshot: list[dict], finetuned: list[dict]) -> tuple[dict, dict]:
    """(scores, predictions) per phase, the scores computed by the engine from the records."""
    predictions = {"zeroshot": zeroshot, "finetuned": finetuned}
    return {phase: score(task, records) for phase, records in predictions.items()}, predictions


def sst2_phases(n: int = 200) -> tuple[dict, dict]:
    zeroshot, finetuned = sst2_records(n, right=0.5, seed=1), sst2_records(n, right=0.9, seed=1)
    return phases(SST2, zeroshot, finetuned)


def squad_phases(n: int = 60) -> tuple[dict, dict]:
    zeroshot, finetuned = squad_records(n, seed=1), squad_records(n, seed=2)
    finetuned = [dict(r, id=z["id"], gold=z["gold"]) for r, z in zip(finetuned, zeroshot, strict=True)]
    return phases(SQUAD, zeroshot, finetuned)


# ------------------------------------------------------------------------------------------------ the rows
def test_rows_follow_the_task_headline_with_intervals():
    scores, predictions = sst2_phases()
    rows = compare_split(SST2, "test", scores, predictions, seed=1)
    assert [r.metric for r in rows] == SST2.metrics.headline
    for row in rows:
        assert (row.task, row.split, row.n, row.scale) == ("sst2", "test", 200, "fraction")
        assert row.zeroshot == scores["zeroshot"][row.metric] and row.finetuned == scores["finetuned"][row.metric]
        assert row.zeroshot_ci.low <= row.zeroshot <= row.zeroshot_ci.high
        assert row.finetuned_ci.low <= row.finetuned <= row.finetuned_ci.high
        assert row.delta_ci.low <= row.delta <= row.delta_ci.high
    accuracy = rows[0]
    assert accuracy.delta > 0.3 and accuracy.significant


def test_changing_the_task_headline_changes_the_rows():
    scores, predictions = sst2_phases()
    task = with_headline(SST2, ["macro_recall", "accuracy", "not_a_metric"])
    rows = compare_split(task, "test", scores, predictions, seed=1)
    assert [r.metric for r in rows] == ["macro_recall", "accuracy"]  # unknown keys have no row
    assert rows[0].delta_ci is not None


def test_rows_skip_metrics_missing_on_one_side_and_keys_without_per_example_terms():
    scores, predictions = sst2_phases(50)
    del scores["zeroshot"]["f1"]
    task = with_headline(SST2, ["accuracy", "f1", "support_positive"])
    rows = compare_split(task, "test", scores, predictions, seed=1)
    assert [(r.metric, r.delta_ci is None) for r in rows] == [("accuracy", False), ("support_positive", True)]


def test_rows_refuse_metrics_the_predictions_do_not_reproduce():
    scores, predictions = sst2_phases(50)
    scores["finetuned"]["accuracy"] += 0.01
    with pytest.raises(DataError, match="finetuned: accuracy recomputed"):
        compare_split(SST2, "test", scores, predictions, seed=1)


def test_rows_refuse_phases_scored_on_different_examples():
    scores, predictions = sst2_phases(50)
    predictions["finetuned"] = predictions["finetuned"][1:]
    with pytest.raises(DataError, match="same examples"):
        compare_split(SST2, "test", scores, predictions, seed=1)


def test_squad_rows_are_percent_with_intervals_for_every_headline_metric(wordnet_ready):
    scores, predictions = squad_phases()
    rows = compare_split(SQUAD, "validation", scores, predictions, seed=1)
    assert [r.metric for r in rows] == SQUAD.metrics.headline
    assert all(r.scale == "percent" and r.delta_ci is not None for r in rows)
    line = table_lines(rows)[2]
    number = r"\d+\.\d\d"
    assert re.fullmatch(rf"\| squad_v2 \| validation \| exact \| {number} \[{number}, {number}\] \| .+ \| 60 \|", line)


@pytest.fixture(scope="module")
def wordnet_ready() -> None:
    from tuneval import wordnet as wordnet_support

    if not wordnet_support.wordnet_available():
        pytest.skip("WordNet is not installed for NLTK (METEOR); see scripts/install_wordnet.py")


# ----------------------------------------------------------------------------------------------- the table
def test_table_cells_intervals_and_bold_significant_changes():
    scores, predictions = sst2_phases()
    rows = compare_split(SST2, "test", scores, predictions, seed=1)
    lines = table_lines(rows)
    assert lines[0] == "| task | split | metric | zero-shot [95% CI] | fine-tuned [95% CI] | Δ [paired 95% CI] | n |"
    accuracy = rows[0]
    ci = accuracy.delta_ci
    assert lines[2] == (
        f"| sst2 | test | accuracy | {accuracy.zeroshot:.4f} [{accuracy.zeroshot_ci.low:.4f}, "
        f"{accuracy.zeroshot_ci.high:.4f}] | {accuracy.finetuned:.4f} [{accuracy.finetuned_ci.low:.4f}, "
        f"{accuracy.finetuned_ci.high:.4f}] | **{accuracy.delta:+.4f}** [{ci.low:+.4f}, {ci.high:+.4f}] | 200 |")
    same = compare_split(SST2, "test", {"zeroshot": scores["zeroshot"], "finetuned": scores["zeroshot"]},
                         {"zeroshot": predictions["zeroshot"], "finetuned": predictions["zeroshot"]}, seed=1)
    assert table_lines(same)[2].endswith("| +0.0000 [+0.0000, +0.0000] | 200 |")  # not bold: the interval holds 0
    card_lines = table_lines(rows, with_task=False, metric_label=SST2.metrics.display_name)
    assert card_lines[2].startswith("| test | Accuracy | ")


def test_readme_holds_a_block_in_the_report_format():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = readme[readme.index(README_START): readme.index(README_END) + len(README_END)]
    lines = block.splitlines()
    header = table_lines([])
    assert lines[1:3] == header, "README's results table must be a copy of the report's block"
    for line in lines[3:-1]:
        assert line.count("|") == header[0].count("|"), line


# ----------------------------------------------------------------------------------------------- the files
def test_write_report_files(tmp_path, params):
    sst2_scores, sst2_predictions = sst2_phases()
    rows = compare_split(SST2, "test", sst2_scores, sst2_predictions, seed=params.seed)
    runs = {"sst2": {"zeroshot": RUN, "finetuned": {**RUN, "dtype": "bfloat16"}}}
    md, png, js = (tmp_path / "report" / f"summary.{ext}" for ext in ("md", "png", "json"))
    write_report(rows, [SST2], runs, params, md, png, js)
    text = md.read_text(encoding="utf-8")
    assert params.model.name in text
    assert readme_block(rows) in text
    assert ("- `sst2` (fraction): 0-shot, chat template off, prompt `0123456789ab`, "
            "dtype float32 (zero-shot) / bfloat16 (fine-tuned)") in text
    assert "1,000 seeded resamples" in text and "paired" in text and "No interval" not in text
    assert png.read_bytes()[:8] == PNG_MAGIC
    summary = json.loads(js.read_text())
    assert summary["bootstrap"] == {"resamples": 1000, "level": 0.95, "seed": params.seed}
    accuracy = summary["sst2"]["test"]["accuracy"]
    assert summary["sst2"]["test"]["n"] == 200
    assert set(accuracy) == {f"{p}{s}" for p in ("zeroshot", "finetuned", "delta") for s in ("", "_low", "_high")}
    assert accuracy["delta"] == pytest.approx(rows[0].delta) and accuracy["delta_low"] == rows[0].delta_ci.low
    assert set(summary["sst2"]["test"]) == {"n", *SST2.metrics.headline}
    assert sorted(p.name for p in md.parent.iterdir()) == ["summary.json", "summary.md", "summary.png"]


def write_phase_files(root: Path, task: str, phase: str, scores: dict, records: list[dict], split: str = "test"):
    """metrics/<task>/<phase>.json (per-split scores + run) and predictions/<task>/<phase>/<split>.json."""
    write_json(root / "metrics" / task / f"{phase}.json", {split: scores, "run": RUN})
    write_json(root / "predictions" / task / phase / f"{split}.json", records)


def test_no_module_decides_the_headline_list(tmp_path, params, monkeypatch, capsys):
    """Give sst2 another headline list: the console line, the report and the model card all follow it."""
    from tuneval.publishing import build_model_card

    task = with_headline(SST2, ["macro_recall", "recall_negative"])
    monkeypatch.setattr(pipeline, "get_task", lambda name: task)
    scores, predictions = sst2_phases(80)
    assert pipeline._headline(task, scores["finetuned"]) == (
        f"macro_recall {scores['finetuned']['macro_recall']:.4g}, "
        f"recall_negative {scores['finetuned']['recall_negative']:.4g}")
    for phase in ("zeroshot", "finetuned"):
        write_phase_files(tmp_path, "sst2", phase, scores[phase], predictions[phase])
    monkeypatch.chdir(tmp_path)
    one_task = dataclasses.replace(params, tasks=["sst2"])
    pipeline.report(one_task)
    printed = capsys.readouterr().out
    table = [line for line in printed.splitlines() if line.startswith("| sst2 |")]
    assert [line.split(" | ")[2] for line in table] == ["macro_recall", "recall_negative"]
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert set(summary["sst2"]["test"]) == {"n", "macro_recall", "recall_negative"}

    _, rows = pipeline._compare_phases(task, params.seed)
    counts = {"finetuned": {"total": 1, "trainable": 1, "embedding": 0}}
    card = build_model_card(task, params, "me/x", rows, {"zeroshot": RUN, "finetuned": RUN}, counts)
    names = {result.metric_name for result in card.data.eval_results}
    assert names == {f"{key} ({phase})" for key in task.metrics.headline for phase in ("zero-shot", "fine-tuned")}
    assert "| test | macro_recall |" in card.text and "Accuracy" not in card.text


def test_report_skips_splits_one_phase_lacks(tmp_path, params, monkeypatch):
    scores, predictions = sst2_phases(40)
    write_phase_files(tmp_path, "sst2", "zeroshot", scores["zeroshot"], predictions["zeroshot"])
    write_json(tmp_path / "metrics/sst2/finetuned.json",
               {"test": scores["finetuned"], "validation": scores["finetuned"], "run": RUN})
    write_json(tmp_path / "predictions/sst2/finetuned/test.json", predictions["finetuned"])
    monkeypatch.chdir(tmp_path)
    _, rows = pipeline._compare_phases(SST2, seed=1)
    assert {r.split for r in rows} == {"test"}


def _literal_lists(tree: ast.AST) -> list[list[str]]:
    """The string elements of every list, tuple and set literal in a module."""
    return [[e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
            for node in ast.walk(tree) if isinstance(node, ast.List | ast.Tuple | ast.Set)]


def test_no_python_module_hard_codes_a_headline_list():
    """Which metrics are reported is the task YAML's call: no literal list in src/ names 3+ of a task's headline."""
    for path in sorted((REPO / "src" / "tuneval").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for task in (SST2, SQUAD):
            for strings in _literal_lists(tree):
                shared = set(strings) & set(task.metrics.headline)
                assert len(shared) < 3, f"{path.relative_to(REPO)} lists {task.name} headline metrics {shared}"
