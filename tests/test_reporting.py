"""The report: rows per task headline metric (the task's own list) beside the trivial baseline, intervals from the
predictions (whole clusters for SQuAD v2, examples for SST-2, none when too few clusters), the i.i.d. width, MDE,
McNemar, the split facts, the README block, report/summary.{md,png,json}; and that no module but the task YAML
decides which metrics are reported."""

from __future__ import annotations

import ast
import dataclasses
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from test_stats import squad_records, sst2_records

from tuneval.errors import DataError
from tuneval.io import write_json
from tuneval.report import study
from tuneval.report.summary import (
    README_END,
    README_START,
    TABLE_HEAD,
    check_same_run,
    compare_split,
    findings,
    method_note,
    readme_block,
    split_lines,
    summary_metrics,
    table_lines,
    trivial_baseline,
    write_report,
)
from tuneval.scoring import abstention as A
from tuneval.scoring import metric_files, predict
from tuneval.scoring.scores import score
from tuneval.scoring.stats import MDE_FACTOR, MIN_JACKKNIFE_CLUSTERS
from tuneval.tasks import MetricSpec, Task, get_task

REPO = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SST2, SQUAD = get_task("sst2"), get_task("squad_v2")
RUN = {"num_fewshot": 0, "prompt_sha": "0123456789ab", "dtype": "float32", "chat_template": False}
COUNTS = {"0": 300, "1": 500}  # the training split's label counts (run.json): majority `positive`
METRIC_KEYS = {*(f"{p}{s}" for p in ("zeroshot", "finetuned", "delta") for s in ("", "_low", "_high")),
               "delta_iid_width", "mde", "baseline", "interval"}
SPLIT_KEYS = {"n", "composition", "resampling", "interval", "iid_interval", "baseline"}


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


def squad_phases(n: int = 60, per_article: int = 2, per_context: int = 1) -> tuple[dict, dict]:
    zeroshot = squad_records(n, seed=1, per_article=per_article, per_context=per_context)
    finetuned = squad_records(n, seed=2, per_article=per_article, per_context=per_context)
    finetuned = [dict(r, id=z["id"], gold=z["gold"]) for r, z in zip(finetuned, zeroshot, strict=True)]
    return phases(SQUAD, zeroshot, finetuned)


def sst2_compare(n: int = 200, task: Task = SST2, counts: dict | None = None):
    scores, predictions = sst2_phases(n)
    return compare_split(task, "test", scores, predictions, seed=1, train_label_counts=counts or COUNTS)


def squad_clustered_phases(articles: int = 40, per_article: int = 5) -> tuple[dict, dict]:
    """Answerable questions; fine-tuned gets a whole article right or wrong (strongly clustered outcomes),
    zero-shot gets every question wrong."""
    zeroshot, finetuned = [], []
    for i in range(articles * per_article):
        a = i // per_article
        base = {"id": f"q{i}", "no_answer_prob": 0.1, "gold": ["the sun"],
                "cluster": {"title": f"article-{a:03d}", "context": f"context-{a:03d}"}}
        right = a % 5 < 3
        zeroshot.append({**base, "generated": "red car", "prediction": "red car"})
        finetuned.append({**base, "generated": "the sun" if right else "old king",
                          "prediction": "the sun" if right else "old king"})
    return phases(SQUAD, zeroshot, finetuned)




# ------------------------------------------------------------------------------------------------ the rows
def test_rows_follow_the_task_headline_with_intervals():
    rows, facts = sst2_compare()
    scores, _ = sst2_phases()
    assert [r.metric for r in rows] == SST2.metrics.headline
    for row in rows:
        assert (row.task, row.split, row.n, row.scale) == ("sst2", "test", 200, "fraction")
        assert row.zeroshot == scores["zeroshot"][row.metric] and row.finetuned == scores["finetuned"][row.metric]
        assert row.zeroshot_ci.low <= row.zeroshot <= row.zeroshot_ci.high
        assert row.finetuned_ci.low <= row.finetuned <= row.finetuned_ci.high
        assert row.delta_ci.low <= row.delta <= row.delta_ci.high
        assert row.delta_iid_width == row.delta_ci.width  # SST-2 resamples examples: the i.i.d. interval itself
        assert row.mde > 0 and row.baseline is not None
    accuracy = rows[0]
    assert accuracy.delta > 0.3 and accuracy.significant
    assert (facts.task, facts.split, facts.n, facts.resampling) == ("sst2", "test", 200, "examples (i.i.d.)")
    assert re.fullmatch(r"\d+\.\d% negative, \d+\.\d% positive", facts.composition)
    assert set(facts.mcnemar) == {"only_first", "only_second", "p"} and facts.mcnemar["p"] < 1e-6


def test_changing_the_task_headline_changes_the_rows():
    rows, _ = sst2_compare(task=with_headline(SST2, ["macro_recall", "accuracy", "not_a_metric"]))
    assert [r.metric for r in rows] == ["macro_recall", "accuracy"]  # unknown keys have no row
    assert rows[0].delta_ci is not None


def test_rows_skip_metrics_missing_on_one_side_and_keys_without_per_example_terms():
    scores, predictions = sst2_phases(50)
    del scores["zeroshot"]["f1"]
    task = with_headline(SST2, ["accuracy", "f1", "support_positive"])
    rows, _ = compare_split(task, "test", scores, predictions, seed=1, train_label_counts=COUNTS)
    assert [(r.metric, r.delta_ci is None) for r in rows] == [("accuracy", False), ("support_positive", True)]
    assert rows[1].mde is None and rows[1].delta_iid_width is None


def test_rows_refuse_metrics_the_predictions_do_not_reproduce():
    scores, predictions = sst2_phases(50)
    scores["finetuned"]["accuracy"] += 0.01
    with pytest.raises(DataError, match="finetuned: accuracy recomputed"):
        compare_split(SST2, "test", scores, predictions, seed=1, train_label_counts=COUNTS)


def test_rows_refuse_phases_scored_on_different_examples():
    scores, predictions = sst2_phases(50)
    predictions["finetuned"] = predictions["finetuned"][1:]
    with pytest.raises(DataError, match="same examples"):
        compare_split(SST2, "test", scores, predictions, seed=1, train_label_counts=COUNTS)


def test_squad_rows_are_percent_with_intervals_for_every_headline_metric(wordnet_ready):
    scores, predictions = squad_phases()  # 30 articles: enough for a cluster bootstrap of articles
    rows, facts = compare_split(SQUAD, "validation", scores, predictions, seed=1)
    assert [r.metric for r in rows] == SQUAD.metrics.headline
    assert all(r.scale == "percent" and r.delta_ci is not None and r.mde is not None for r in rows)
    assert facts.resampling == "whole articles (30 articles)" and facts.mcnemar is None
    assert facts.baseline == "always abstain"
    unanswerable = 100 * sum(not r["gold"] for r in predictions["zeroshot"]) / 60
    assert facts.composition == f"30 articles, 60 contexts, {unanswerable:.1f}% unanswerable"
    line = table_lines(rows)[2]
    number = r"\d+\.\d\d"
    signed = r"\**[+-]\d+\.\d\d\**"
    assert re.fullmatch(rf"\| squad_v2 \| validation \| exact \| {number} \| {number} \[{number}, {number}\] \| "
                        rf"{number} \[{number}, {number}\] \| {signed} \[[+-]{number}, [+-]{number}\] \| "
                        rf"{number} / {number} \| {number} \| 60 \|", line), line


def test_two_articles_get_no_interval_but_say_why(wordnet_ready):
    scores, predictions = squad_phases(60, per_article=30, per_context=3)  # 2 articles, 20 contexts
    rows, facts = compare_split(SQUAD, "validation", scores, predictions, seed=1)
    assert [r.metric for r in rows] == SQUAD.metrics.headline
    for row in rows:
        assert (row.zeroshot_ci, row.finetuned_ci, row.delta_ci, row.mde) == (None, None, None, None)
        assert not row.significant
    assert rows[0].delta_iid_width > 0  # the i.i.d. width is still shown, for comparison
    assert facts.resampling == (f"no honest interval: 2 articles, 20 contexts, fewer than {MIN_JACKKNIFE_CLUSTERS} "
                                "clusters")
    assert (facts.interval, facts.iid_interval) == ("no interval", "bootstrap, 1000 resamples")
    assert all(r.interval == "" and r.iid_interval == "bootstrap, 1000 resamples" for r in rows)
    assert "No interval: " + ", ".join(sorted(f"squad_v2 {key}" for key in SQUAD.metrics.headline)) in (
        method_note(rows))
    finding = findings(rows, [facts])[0]
    assert f"Δ {rows[0].delta:+.2f}: no honest interval: 2 articles, 20 contexts" in finding
    assert split_lines([facts])[0].endswith(f"; intervals: {facts.resampling}; baseline: always abstain.")
    assert table_lines(rows)[2].endswith("| – / " + f"{rows[0].delta_iid_width:.2f} | – | 60 |")


def test_cluster_interval_differs_from_the_iid_one_on_clustered_data(wordnet_ready):
    scores, predictions = squad_clustered_phases()
    rows, facts = compare_split(SQUAD, "validation", scores, predictions, seed=1)
    assert facts.resampling == "whole articles (40 articles)"
    exact = next(r for r in rows if r.metric == "exact")
    assert exact.delta == pytest.approx(60.0)
    assert exact.delta_ci.width > 1.5 * exact.delta_iid_width  # 40 article outcomes, not 200 question ones


# ------------------------------------------------------------------------------------------------ baselines
@pytest.mark.parametrize(("counts", "name"), [({"0": 30, "1": 70}, "positive"), ({"0": 70, "1": 30}, "negative")])
def test_majority_class_baseline_always_predicts_the_training_majority(counts, name):
    records = sst2_records(150, right=0.7, seed=3)
    baseline, described = trivial_baseline(SST2, records, counts)
    assert [r["id"] for r in baseline] == [r["id"] for r in records]
    assert {r["predicted"] for r in baseline} == {name}
    assert [r["actual"] for r in baseline] == [r["actual"] for r in records]
    assert described == f"majority class of the training split (always `{name}`)"
    scores, predictions = phases(SST2, records, sst2_records(150, right=0.9, seed=3))
    rows, facts = compare_split(SST2, "test", scores, predictions, seed=1, train_label_counts=counts)
    share = Counter(r["actual"] for r in records)[name] / len(records)
    assert rows[0].metric == "accuracy" and rows[0].baseline == pytest.approx(share, abs=1e-12)
    assert facts.baseline == described


def test_majority_class_needs_the_training_label_counts():
    scores, predictions = sst2_phases(20)
    with pytest.raises(DataError, match="train_label_counts"):
        compare_split(SST2, "test", scores, predictions, seed=1)


def test_run_record_holds_the_training_label_counts_the_baseline_reads():
    train = [{"id": str(i), "label": int(i % 3 == 0)} for i in range(30)]  # 10 positive, 20 negative
    counts = predict.train_label_counts(SST2, train)
    assert counts == {"0": 20, "1": 10}
    _, described = trivial_baseline(SST2, sst2_records(5, right=1.0), counts)
    assert "`negative`" in described


def test_always_abstain_baseline_scores_the_unanswerable_share(wordnet_ready):
    _, predictions = squad_phases()
    # gold answers that do not normalize to "" (a gold "the" would match an abstention: the official convention)
    predictions = {phase: [dict(r, gold=["paris red"] if r["gold"] else []) for r in records]
                   for phase, records in predictions.items()}
    scores, predictions = phases(SQUAD, predictions["zeroshot"], predictions["finetuned"])
    records = predictions["finetuned"]
    baseline, described = trivial_baseline(SQUAD, records, {})
    assert described == "always abstain"
    share = 100 * sum(not r["gold"] for r in records) / len(records)
    assert 0 < share < 100
    expected = {"exact": share, "f1": share, "HasAns_f1": 0.0, "NoAns_f1": 100.0, "answered": 0.0}
    engine = score(SQUAD, baseline)
    rows, _ = compare_split(SQUAD, "validation", scores, predictions, seed=1)
    by_metric = {r.metric: r.baseline for r in rows}
    for key, value in expected.items():
        assert engine[key] == pytest.approx(value, abs=1e-9), key
        assert by_metric[key] == pytest.approx(value, abs=1e-9), key


# ----------------------------------------------------------------------------------------------- the table
def test_table_cells_intervals_and_bold_significant_changes():
    rows, _ = sst2_compare()
    scores, predictions = sst2_phases()
    lines = table_lines(rows)
    assert lines[0] == "| " + " | ".join(["task", *TABLE_HEAD]) + " |"
    assert lines[0] == ("| task | split | metric | baseline | zero-shot [95% CI] | fine-tuned [95% CI] | "
                        "Δ [paired 95% CI] | Δ CI width: clustered / i.i.d. | MDE | n |")
    assert lines[1].count("---:") == 7
    a = rows[0]
    ci = a.delta_ci
    assert lines[2] == (
        f"| sst2 | test | accuracy | {a.baseline:.4f} | {a.zeroshot:.4f} [{a.zeroshot_ci.low:.4f}, "
        f"{a.zeroshot_ci.high:.4f}] | {a.finetuned:.4f} [{a.finetuned_ci.low:.4f}, "
        f"{a.finetuned_ci.high:.4f}] | **{a.delta:+.4f}** [{ci.low:+.4f}, {ci.high:+.4f}] | "
        f"{ci.width:.4f} / {a.delta_iid_width:.4f} | {a.mde:.4f} | 200 |")
    same, _ = compare_split(SST2, "test", {"zeroshot": scores["zeroshot"], "finetuned": scores["zeroshot"]},
                            {"zeroshot": predictions["zeroshot"], "finetuned": predictions["zeroshot"]}, seed=1,
                            train_label_counts=COUNTS)
    assert table_lines(same)[2].endswith(  # not bold: the interval holds 0
        "| +0.0000 [+0.0000, +0.0000] | 0.0000 / 0.0000 | 0.0000 | 200 |")
    card_lines = table_lines(rows, with_task=False, metric_label=SST2.metrics.display_name)
    assert card_lines[0] == "| " + " | ".join(TABLE_HEAD) + " |"
    assert card_lines[2].startswith("| test | Accuracy | ")


def test_split_lines_and_findings_come_from_the_numbers():
    rows, facts = sst2_compare()
    (line,) = split_lines([facts])
    assert line.startswith(f"- `sst2` test: 200 examples ({facts.composition}); intervals: bootstrap, 1000 resamples "
                           "over examples (i.i.d.); baseline: majority "
                           "class of the training split (always `positive`); McNemar exact p = ")
    assert f"({facts.mcnemar['only_first']} right only zero-shot, {facts.mcnemar['only_second']} right only " in line
    (finding,) = findings(rows, [facts])
    a = rows[0]
    assert finding.startswith(f"- `sst2` test (accuracy): zero-shot {a.zeroshot:.4f}, fine-tuned {a.finetuned:.4f}")
    assert f"scores {a.baseline:.4f}" in finding and "is more than resampling noise" in finding
    scores, predictions = sst2_phases()
    same, same_facts = compare_split(
        SST2, "test", {"zeroshot": scores["zeroshot"], "finetuned": scores["zeroshot"]},
        {"zeroshot": predictions["zeroshot"], "finetuned": predictions["zeroshot"]}, seed=1, train_label_counts=COUNTS)
    assert same_facts.mcnemar == {"only_first": 0, "only_second": 0, "p": 1.0}
    (within,) = findings(same, [same_facts])
    assert f"is within resampling noise: this sample detects changes of about {same[0].mde:.4f} or more" in within
    block = readme_block(rows, [facts])
    assert block.startswith(README_START + "\n" + line + "\n\n") and block.endswith(finding + "\n" + README_END)
    assert "\n".join(table_lines(rows)) in block


def test_write_report_files(tmp_path, params, wordnet_ready):
    sst2_rows, sst2_facts = sst2_compare()
    squad_scores, squad_predictions = squad_phases()
    squad_rows, squad_facts = compare_split(SQUAD, "validation", squad_scores, squad_predictions,
                                            seed=params.data.seed)
    rows, facts = sst2_rows + squad_rows, [sst2_facts, squad_facts]
    runs = {"sst2": {"zeroshot": RUN, "finetuned": RUN}, "squad_v2": {"zeroshot": RUN, "finetuned": RUN}}
    md, png, js = (tmp_path / "report" / f"summary.{ext}" for ext in ("md", "png", "json"))
    write_report(rows, facts, [SST2, SQUAD], runs, params, md, png, js)
    text = md.read_text(encoding="utf-8")
    assert params.model.name in text
    assert readme_block(rows, facts) in text
    assert f"training seed {params.seed}, training examples sst2 {params.data.train_examples['sst2']}" in text
    assert f"(data.seed {params.data.seed})" in text
    assert "- `sst2` (fraction): 0-shot, chat template off, prompt `0123456789ab`, dtype float32" in text
    assert "1,000 seeded resamples" in text and "paired" in text and "No interval" not in text
    assert "whole articles (30 articles)" in text and "MDE" in text
    assert ("Used here: `sst2` test: bootstrap, 1000 resamples (i.i.d. widths: bootstrap, 1000 resamples); "
            "`squad_v2` validation: cluster bootstrap, 1000 resamples (i.i.d. widths: bootstrap, 1000 resamples)."
            ) in text
    assert "- `sst2` compute route: unrecorded (both phases)" in text  # runs from before routes were recorded
    assert "| squad_v2 | validation | best_f1 (in-sample upper bound) |" in text
    after = text.split(README_END)[1]  # the abstention section and plot follow the README block (the README is
    assert "\n## Abstention\n" in after  # elsewhere: the plot's relative link would break there)
    assert "\n![no-answer probability per class, zero-shot and fine-tuned](abstention.png)" in after
    section = after.split("## Abstention")[1]
    for key in A.REPORTED:
        row = next(r for r in squad_rows if r.metric == key)
        assert (f"  - {row.label}: zero-shot {row.zeroshot:.2f} [{row.zeroshot_ci.low:.2f}, {row.zeroshot_ci.high:.2f}]"
                f", fine-tuned {row.finetuned:.2f}") in section
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert (md.parent / "abstention.png").read_bytes()[:8] == PNG_MAGIC
    summary = json.loads(js.read_text())
    assert summary["bootstrap"] == {"resamples": 1000, "level": 0.95, "seed": params.data.seed}
    sst2 = summary["sst2"]["test"]
    assert set(sst2) == {*SPLIT_KEYS, "mcnemar_p", "mcnemar_only_zeroshot", "mcnemar_only_finetuned",
                         *SST2.metrics.headline}
    assert (sst2["interval"], sst2["iid_interval"]) == ("bootstrap, 1000 resamples", "bootstrap, 1000 resamples")
    assert (sst2["n"], sst2["composition"], sst2["resampling"]) == (200, sst2_facts.composition, "examples (i.i.d.)")
    assert sst2["baseline"] == sst2_facts.baseline
    assert sst2["mcnemar_p"] == sst2_facts.mcnemar["p"]
    assert sst2["mcnemar_only_zeroshot"] == sst2_facts.mcnemar["only_first"]
    assert sst2["mcnemar_only_finetuned"] == sst2_facts.mcnemar["only_second"]
    squad = summary["squad_v2"]["validation"]
    assert set(squad) == {*SPLIT_KEYS, *SQUAD.metrics.headline}
    assert (squad["n"], squad["resampling"], squad["baseline"]) == (60, "whole articles (30 articles)",
                                                                    "always abstain")
    assert squad["interval"] == "cluster bootstrap, 1000 resamples"
    assert squad["best_f1"]["note"] == A.IN_SAMPLE_NOTE
    assert "5-fold cross-fit over articles" in squad["heldout_f1"]["note"]
    abstention = summary["abstention"]["squad_v2"]["validation"]
    assert abstention["heldout_rule"] == "5-fold cross-fit over articles" and abstention["folds"] == 5
    assert abstention["best_f1_note"] == A.IN_SAMPLE_NOTE
    for phase in ("zeroshot", "finetuned"):
        entry = abstention[phase]
        assert entry["greedy_f1"] == squad_scores[phase]["f1"]
        assert entry["heldout_f1"] == squad_scores[phase]["heldout_f1"]
        assert entry["heldout_f1_thresholds"] == pytest.approx(squad_scores[phase]["heldout_f1_thresholds"])
        assert entry["best_f1_in_sample"] == squad_scores[phase]["best_f1"]
        assert entry["best_f1_thresh_in_sample"] == pytest.approx(squad_scores[phase]["best_f1_thresh"])
        assert entry["no_answer_auroc"] == squad_scores[phase]["no_answer_auroc"]
        assert entry["answered"] == squad_scores[phase]["answered"]
        assert entry["no_answer_auroc_low"] < entry["no_answer_auroc"] < entry["no_answer_auroc_high"]
        assert entry["no_answer_auroc_interval"] == "cluster bootstrap, 1000 resamples"
        assert entry["heldout_f1_minus_always_abstain"] == pytest.approx(
            squad_scores[phase]["heldout_f1"] - abstention["always_abstain_f1"])
    for task, entry, task_rows in (("sst2", sst2, sst2_rows), ("squad_v2", squad, squad_rows)):
        for row in task_rows:
            values = entry[row.metric]
            assert set(values) - {"note"} == METRIC_KEYS, (task, row.metric)
            assert values["interval"] == row.interval and row.interval == entry["interval"]
            assert values["delta"] == pytest.approx(row.delta)
            assert (values["delta_low"], values["delta_high"]) == (row.delta_ci.low, row.delta_ci.high)
            assert values["mde"] == pytest.approx(MDE_FACTOR * values["mde"] / MDE_FACTOR) == row.mde
            assert values["delta_iid_width"] == row.delta_iid_width and values["baseline"] == row.baseline
    routes = summary.pop("routes")  # every phase's compute route, from its run facts (unrecorded here: null)
    assert routes == {task: {phase: None for phase in ("zeroshot", "finetuned")} for task in ("sst2", "squad_v2")}
    assert summary == summary_metrics(rows, facts, params.data.seed)
    assert sorted(p.name for p in md.parent.iterdir()) == ["abstention.png", "summary.json", "summary.md",
                                                           "summary.png"]


def write_phase_files(root: Path, task: str, phase: str, scores: dict, records: list[dict], split: str = "test",
                      counts: dict | None = None):
    """metrics/<task>/<phase>.json (per-split scores + run), predictions/<task>/<phase>/<split>.json and its
    run.json (with the training label counts, as evaluate_phase writes them)."""
    write_json(root / "metrics" / task / f"{phase}.json", {split: scores, "run": RUN})
    write_json(root / "predictions" / task / phase / f"{split}.json", records)
    write_json(root / "predictions" / task / phase / "run.json", {**RUN, "train_label_counts": counts or COUNTS})


def test_no_module_decides_the_headline_list(tmp_path, params, monkeypatch, capsys):
    """Give sst2 another headline list: the console line, the report and the model card all follow it."""
    from tuneval.report.card import build_model_card

    task = with_headline(SST2, ["macro_recall", "recall_negative"])
    monkeypatch.setattr(study, "get_task", lambda name: task)
    scores, predictions = sst2_phases(80)
    assert metric_files.headline(task, scores["finetuned"]) == (
        f"macro_recall {scores['finetuned']['macro_recall']:.4g}, "
        f"recall_negative {scores['finetuned']['recall_negative']:.4g}")
    for phase in ("zeroshot", "finetuned"):
        write_phase_files(tmp_path, "sst2", phase, scores[phase], predictions[phase])
    monkeypatch.chdir(tmp_path)
    one_task = dataclasses.replace(params, tasks=["sst2"])
    study.report(one_task)
    printed = capsys.readouterr().out
    table = [line for line in printed.splitlines() if line.startswith("| sst2 |")]
    assert [line.split(" | ")[2] for line in table] == ["macro_recall", "recall_negative"]
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert set(summary["sst2"]["test"]) == {*SPLIT_KEYS, "mcnemar_p", "mcnemar_only_zeroshot",
                                            "mcnemar_only_finetuned", "macro_recall", "recall_negative"}

    _, rows, facts = study.compare_phases(task, params.data.seed)
    assert [f.split for f in facts] == ["test"]
    counts = {"finetuned": {"total": 1, "trainable": 1, "embedding": 0}}
    card = build_model_card(task, params, "me/x", rows, {"zeroshot": RUN, "finetuned": RUN}, counts)
    names = {result.metric_name for result in card.data.eval_results}
    assert names == {f"{key} ({phase})" for key in task.metrics.headline for phase in ("zero-shot", "fine-tuned")}
    assert "| test | macro_recall |" in card.text and "Accuracy" not in card.text


def test_report_skips_splits_one_phase_lacks(tmp_path, params, monkeypatch):
    scores, predictions = sst2_phases(40)
    write_phase_files(tmp_path, "sst2", "zeroshot", scores["zeroshot"], predictions["zeroshot"])
    write_phase_files(tmp_path, "sst2", "finetuned", scores["finetuned"], predictions["finetuned"])
    write_json(tmp_path / "metrics/sst2/finetuned.json",
               {"test": scores["finetuned"], "validation": scores["finetuned"], "run": RUN})
    monkeypatch.chdir(tmp_path)
    _, rows, facts = study.compare_phases(SST2, seed=1)
    assert {r.split for r in rows} == {"test"} and [f.split for f in facts] == ["test"]


def test_compare_phases_takes_the_majority_class_from_run_json(tmp_path, monkeypatch):
    scores, predictions = sst2_phases(40)
    for phase in ("zeroshot", "finetuned"):
        write_phase_files(tmp_path, "sst2", phase, scores[phase], predictions[phase], counts={"0": 9, "1": 2})
    monkeypatch.chdir(tmp_path)
    _, rows, (facts,) = study.compare_phases(SST2, seed=1)
    assert facts.baseline == "majority class of the training split (always `negative`)"
    share = sum(r["actual"] == "negative" for r in predictions["finetuned"]) / 40
    assert rows[0].baseline == pytest.approx(share, abs=1e-12)


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


def test_squad_finding_says_how_often_the_model_answers(wordnet_ready):
    """The abstention behaviour is generated too: the answer rate of both phases beside the split's make-up."""
    scores, predictions = squad_phases()
    rows, facts = compare_split(SQUAD, "validation", scores, predictions, seed=1)
    answered = next(r for r in rows if r.metric == "answered")
    finding, abstention = findings(rows, [facts])
    assert abstention.startswith("- `squad_v2` validation abstention: ")
    assert (f"It answers {answered.finetuned:.2f}% of the questions fine-tuned and {answered.zeroshot:.2f}% "
            f"zero-shot ({facts.composition}).") in finding
    assert "unanswerable" in facts.composition


def test_phases_scored_with_different_settings_are_refused(tmp_path):
    """model.dtype `auto` resolves per machine, which DVC cannot see: fp32 zero-shot metrics committed from one
    machine and bf16 fine-tuned ones from another must not be reported as fine-tuning's change."""
    files = {"zeroshot": tmp_path / "zeroshot.json", "finetuned": tmp_path / "finetuned.json"}
    check_same_run("sst2", {"zeroshot": RUN, "finetuned": dict(RUN)}, files)  # the same settings pass
    with pytest.raises(DataError) as err:
        check_same_run("sst2", {"zeroshot": RUN, "finetuned": {**RUN, "dtype": "bfloat16"}}, files)
    message = str(err.value)
    assert str(files["zeroshot"]) in message and str(files["finetuned"]) in message
    assert "dtype float32 vs bfloat16" in message and "dvc repro -f zeroshot_eval@sst2 eval@sst2" in message


# ------------------------------------------------------------------------------------ few articles: jackknife
def test_fewer_than_30_articles_get_jackknife_t_intervals_labelled_as_such(wordnet_ready):
    from scipy.stats import t

    scores, predictions = squad_phases(60, per_article=3, per_context=1)  # 20 articles
    rows, facts = compare_split(SQUAD, "validation", scores, predictions, seed=1)
    assert facts.resampling == "whole articles (20 articles)"
    assert (facts.interval, facts.iid_interval) == ("cluster jackknife t, G−1 = 19 df", "bootstrap, 1000 resamples")
    assert "intervals: cluster jackknife t, G−1 = 19 df over whole articles (20 articles)" in split_lines([facts])[0]
    exact = next(r for r in rows if r.metric == "exact")
    assert (exact.interval, exact.iid_interval) == (facts.interval, facts.iid_interval)
    half = exact.delta_ci.width / 2  # t_0.975,19 x SE, and the MDE is (t_0.975,19 + t_0.8,19) x SE
    assert exact.delta_ci.low + half == pytest.approx(exact.delta)
    assert exact.mde / half == pytest.approx((t.ppf(0.975, 19) + t.ppf(0.8, 19)) / t.ppf(0.975, 19))
    assert "`squad_v2` validation: cluster jackknife t, G−1 = 19 df" in method_note(rows)
    summary = summary_metrics(rows, [facts], seed=1)
    assert summary["squad_v2"]["validation"]["interval"] == "cluster jackknife t, G−1 = 19 df"
    assert summary["squad_v2"]["validation"]["exact"]["interval"] == "cluster jackknife t, G−1 = 19 df"
    assert "iid" not in summary["squad_v2"]["validation"]["interval"]


# ----------------------------------------------------------------------------------------------- abstention
def separated_phases(articles: int = 30, per_article: int = 4) -> tuple[dict, dict]:
    """Fine-tuned: the no-answer probability is high exactly on unanswerable questions and the answers are right
    (a threshold separates them perfectly); zero-shot: the same probability everywhere and wrong answers."""
    zeroshot, finetuned = [], []
    for i in range(articles * per_article):
        answerable = i % 2 == 0
        base = {"id": f"q{i}", "gold": ["paris red"] if answerable else [],
                "cluster": {"title": f"article-{i // per_article:03d}", "context": f"c{i}"}}
        zeroshot.append({**base, "prediction": "old king", "no_answer_prob": 0.1, "no_answer_logprob": -2.3})
        probability = 0.02 + 0.001 * i if answerable else 0.6 + 0.001 * i
        finetuned.append({**base, "prediction": "paris red", "no_answer_prob": probability,
                          "no_answer_logprob": float(np.log(probability))})
    return phases(SQUAD, zeroshot, finetuned)


def test_abstention_findings_say_what_the_numbers_show(wordnet_ready):
    scores, predictions = separated_phases()
    rows, facts = compare_split(SQUAD, "validation", scores, predictions, seed=1)
    by_metric = {r.metric: r for r in rows}
    auroc, heldout = by_metric["no_answer_auroc"], by_metric["heldout_f1"]
    assert auroc.finetuned == 100.0 and auroc.zeroshot == 50.0 and auroc.baseline == 50.0
    assert heldout.finetuned > 90 and heldout.baseline == pytest.approx(50.0)  # < 100: a fold's answerable
    # questions can score above every threshold its other folds suggest (which in-sample best_f1 never shows)
    assert by_metric["best_f1"].finetuned == 100.0
    finding = findings(rows, [facts])[1]
    assert finding.startswith("- `squad_v2` validation abstention: ")
    assert (f"fine-tuned 100.00 [{auroc.finetuned_ci.low:.2f}, {auroc.finetuned_ci.high:.2f}] "
            "(excludes chance)") in finding
    assert "zero-shot 50.00 [50.00, 50.00] (includes chance)" in finding
    assert (f"fine-tuned {heldout.finetuned:.2f} (above always abstaining beyond resampling noise, "
            f"Δ {heldout.finetuned - 50:+.2f}") in finding
    assert "zero-shot 50.00 (the same score as always abstaining in every resample, Δ +0.00" in finding
    assert "5-fold cross-fit over articles" in finding and "always abstaining: 50.00" in finding
    best = by_metric["best_f1"]
    assert (f"best_f1 (in-sample upper bound) lies {best.finetuned - heldout.finetuned:+.2f} fine-tuned, "
            f"{best.zeroshot - heldout.zeroshot:+.2f} zero-shot from it") in finding
    # the same split, worse: the fine-tuned probabilities reversed (unanswerable lowest) -> AUROC 0, below chance
    reversed_ = [dict(r, no_answer_prob=1 - r["no_answer_prob"],
                      no_answer_logprob=float(np.log(1 - r["no_answer_prob"]))) for r in predictions["finetuned"]]
    scores, predictions = phases(SQUAD, predictions["zeroshot"], reversed_)
    rows, facts = compare_split(SQUAD, "validation", scores, predictions, seed=1)
    worse = findings(rows, [facts])[1]
    assert "fine-tuned 0.00 [" in worse and "(excludes chance)" in worse
    assert "above always abstaining" not in worse


def test_numbers_never_print_a_negative_zero():
    from tuneval.report.summary import _number

    assert _number(-0.0001, 2, signed=True) == "+0.00" and _number(-0.0001, 2) == "0.00"
    assert _number(-0.006, 2, signed=True) == "-0.01" and _number(0.125, 1) == "0.1"


def test_findings_take_extra_lines_from_other_sections():
    rows, facts = sst2_compare()
    extra = ["- learning curve: generated elsewhere"]
    assert findings(rows, [facts], extra) == [*findings(rows, [facts]), *extra]
    assert readme_block(rows, [facts], extra).endswith(extra[0] + "\n" + README_END)


def test_best_f1_is_labelled_in_sample_in_tables_and_cards(params, wordnet_ready):
    from tuneval.report.card import build_model_card

    scores, predictions = squad_phases()
    rows, _ = compare_split(SQUAD, "validation", scores, predictions, seed=1)
    labels = [line.split(" | ")[2] for line in table_lines(rows)[2:]]
    assert labels == [f"{key} (in-sample upper bound)" if key == "best_f1" else key for key in SQUAD.metrics.headline]
    counts = {"finetuned": {"total": 1, "trainable": 1, "embedding": 0}}
    card = build_model_card(SQUAD, params, "me/x", rows, {"zeroshot": RUN, "finetuned": RUN}, counts)
    assert "| validation | Best F1 (in-sample upper bound) |" in card.text
    assert {r.metric_name for r in card.data.eval_results} >= {"Best F1 (in-sample upper bound) (fine-tuned)",
                                                              "F1 (held-out threshold) (zero-shot)"}
    assert "## Abstention" in card.text and "5-fold cross-fit over articles" in card.text


# --------------------------------------------------------------------------------------------- compute routes
CPU_ROUTE = {"device": "AMD EPYC 7B13 64-Core Processor (avx2)", "device_kind": "cpu", "bf16_route": "fp32_gemms",
             "threads": 2, "flags": ["avx2"], "versions": {"torch": "2.5.1"}, "git_revision": "abc"}
GPU_ROUTE = {"device": "NVIDIA H100 80GB HBM3 (sm_90)", "device_kind": "cuda", "capability": "9.0",
             "bf16_route": "native", "threads": 16, "versions": {"torch": "2.5.1"}, "git_revision": "abc"}


def test_phases_on_different_compute_routes_are_refused_unless_allowed(tmp_path):
    from tuneval.route import route_difference, route_line

    files = {"zeroshot": tmp_path / "zeroshot.json", "finetuned": tmp_path / "finetuned.json"}
    mixed = {"zeroshot": {**RUN, "route": CPU_ROUTE}, "finetuned": {**RUN, "route": GPU_ROUTE}}
    reason = route_difference(CPU_ROUTE, GPU_ROUTE)
    assert reason
    with pytest.raises(DataError) as err:
        check_same_run("sst2", mixed, files)
    message = str(err.value)
    assert "different compute routes" in message and reason in message
    assert route_line(CPU_ROUTE) in message and route_line(GPU_ROUTE) in message
    assert str(files["zeroshot"]) in message and "report.allow_mixed_routes" in message
    label = check_same_run("sst2", mixed, files, allow_mixed_routes=True)
    assert label == f"phases scored on different compute routes: {reason}"
    same = {"zeroshot": {**RUN, "route": CPU_ROUTE}, "finetuned": {**RUN, "route": {**CPU_ROUTE, "threads": 8}}}
    assert check_same_run("sst2", same, files) is None  # threads do not move predictions
    old = {"zeroshot": {**RUN, "route": CPU_ROUTE}, "finetuned": dict(RUN)}  # a run from before routes: accepted
    assert check_same_run("sst2", old, files) is None
    with pytest.raises(DataError, match="dtype"):  # the settings check still comes first
        check_same_run("sst2", {**mixed, "finetuned": {**mixed["finetuned"], "dtype": "x"}}, files,
                       allow_mixed_routes=True)


def test_the_report_states_each_tasks_route_and_labels_a_mixed_pairing(tmp_path, params):
    from tuneval.route import route_difference, route_line

    rows, facts = sst2_compare()
    md, png, js = (tmp_path / f"summary.{ext}" for ext in ("md", "png", "json"))
    runs = {"sst2": {"zeroshot": {**RUN, "route": CPU_ROUTE}, "finetuned": {**RUN, "route": GPU_ROUTE}}}
    write_report(rows, [facts], [SST2], runs, dataclasses.replace(params, tasks=["sst2"]), md, png, js)
    text = md.read_text(encoding="utf-8")
    assert (f"- `sst2` compute route: zero-shot {route_line(CPU_ROUTE)}; fine-tuned {route_line(GPU_ROUTE)}. "
            f"**phases scored on different compute routes**: {route_difference(CPU_ROUTE, GPU_ROUTE)}") in text
    runs = {"sst2": {"zeroshot": {**RUN, "route": CPU_ROUTE}, "finetuned": {**RUN, "route": CPU_ROUTE}}}
    write_report(rows, [facts], [SST2], runs, dataclasses.replace(params, tasks=["sst2"]), md, png, js)
    text = md.read_text(encoding="utf-8")
    assert f"- `sst2` compute route: {route_line(CPU_ROUTE)} (both phases)\n" in text
    assert "different compute routes" not in text
    assert (tmp_path / "abstention.png").read_bytes()[:8] == PNG_MAGIC  # written even when no task abstains
