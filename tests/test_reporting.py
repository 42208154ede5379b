"""summary.md / summary.png from fabricated metrics: a row per headline metric, signed deltas, a PNG."""

from __future__ import annotations

import pytest

from tuneval.reporting import HEADLINES, comparison_rows, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SST2_ZS = {"accuracy": 0.5, "precision": 0.7, "recall": 0.4, "f1": 0.5, "macro_f1": 0.45,
           "macro_precision": 0.9, "n": 1000}
SST2_FT = {"accuracy": 0.8, "precision": 0.6, "recall": 0.9, "f1": 0.72, "macro_f1": 0.45,
           "macro_precision": 0.1, "n": 1000}
SQUAD_ZS = {key: 10.0 + i for i, key in enumerate(HEADLINES["squad_v2"])}
SQUAD_FT = {key: 20.0 + 2 * i for i, key in enumerate(HEADLINES["squad_v2"])} | {"NoAns_f1": 1.0}
METRICS = {
    "sst2": {"zeroshot": {"test": SST2_ZS, "num_fewshot": 0},
             "finetuned": {"test": SST2_FT, "num_fewshot": 0}},
    "squad_v2": {"zeroshot": {"test": SQUAD_ZS, "conventions": {"exact": "x"}, "num_fewshot": 0},
                 "finetuned": {"test": SQUAD_FT, "conventions": {"exact": "x"}, "num_fewshot": 0}},
}


def test_comparison_rows_one_per_headline_metric():
    rows = comparison_rows(METRICS)
    for task in ("sst2", "squad_v2"):
        assert [r["metric"] for r in rows if r["task"] == task] == HEADLINES[task]
    assert all(r["split"] == "test" for r in rows)  # nothing from conventions / num_fewshot
    by_key = {(r["task"], r["metric"]): r for r in rows}
    assert by_key[("sst2", "accuracy")]["delta"] == pytest.approx(0.3)
    assert by_key[("sst2", "precision")]["delta"] == pytest.approx(-0.1)
    assert by_key[("sst2", "macro_f1")]["delta"] == 0
    assert by_key[("squad_v2", "NoAns_f1")]["delta"] == pytest.approx(1.0 - 13.0)
    assert by_key[("squad_v2", "meteor")]["zeroshot"] == pytest.approx(17.0)
    assert by_key[("squad_v2", "meteor")]["finetuned"] == pytest.approx(34.0)
    assert ("sst2", "macro_precision") not in by_key  # not a headline


def test_comparison_rows_skip_metrics_missing_on_one_side():
    metrics = {"sst2": {"zeroshot": {"test": {"accuracy": 0.5}},
                        "finetuned": {"test": {"accuracy": 0.6, "f1": 0.7}, "validation": {"f1": 0.1}}}}
    rows = comparison_rows(metrics)
    assert [(r["split"], r["metric"]) for r in rows] == [("test", "accuracy")]


def test_comparison_rows_unknown_task_uses_sorted_keys():
    metrics = {"other": {"zeroshot": {"dev": {"b": 1.0, "a": 2.0, "note": "text"}},
                         "finetuned": {"dev": {"b": 3.0, "a": 1.0, "note": "text"}}}}
    rows = comparison_rows(metrics)
    assert [(r["metric"], r["delta"]) for r in rows] == [("a", -1.0), ("b", 2.0)]


def test_write_report(tmp_path, params):
    md, png = tmp_path / "metrics" / "summary.md", tmp_path / "metrics" / "summary.png"
    write_report(METRICS, params, md, png)
    text = md.read_text(encoding="utf-8")
    table = [line for line in text.splitlines() if line.startswith(("| sst2 ", "| squad_v2 "))]
    assert len(table) == len(HEADLINES["sst2"]) + len(HEADLINES["squad_v2"])
    assert "| sst2 | test | accuracy | 0.5000 | 0.8000 | +0.3000 |" in table
    assert "| sst2 | test | precision | 0.7000 | 0.6000 | -0.1000 |" in table
    assert "| sst2 | test | recall | 0.4000 | 0.9000 | +0.5000 |" in table
    assert "| squad_v2 | test | NoAns_f1 | 13.0000 | 1.0000 | -12.0000 |" in table
    assert "| squad_v2 | test | exact | 10.0000 | 20.0000 | +10.0000 |" in table
    for row in comparison_rows(METRICS):
        line = next(x for x in table if x.startswith(f"| {row['task']} | {row['split']} | {row['metric']} |"))
        delta = line.rstrip(" |").rsplit("| ", 1)[1]
        assert delta[0] == ("-" if row["delta"] < 0 else "+"), line
    assert params.model.name in text
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert sorted(p.name for p in md.parent.iterdir()) == ["summary.md", "summary.png"]
