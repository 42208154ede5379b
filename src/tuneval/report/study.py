"""The report and publish stages' shared reading: both phases' metrics and predictions of a task, paired."""

from __future__ import annotations

from typing import Any

from tuneval import paths
from tuneval.config import EVAL_SPLITS, PHASES, Params
from tuneval.io import read_json
from tuneval.tasks import Task, get_task


def compare_phases(task: Task, seed: int, allow_mixed_routes: bool = False,
                   ) -> tuple[dict[str, dict[str, Any]], list, list]:
    """Both phases' metrics files, the comparison rows (with intervals) and the facts of every split both
    evaluated. Phases scored with different run settings (dtype, prompt, shots, compute route) are refused."""
    from tuneval.report.summary import check_same_run, compare_split

    files = {phase: paths.metrics_file(task.name, phase) for phase in PHASES}
    metrics = {phase: read_json(files[phase]) for phase in PHASES}
    check_same_run(task.name, {phase: metrics[phase]["run"] for phase in PHASES}, files,
                   allow_mixed_routes=allow_mixed_routes)
    counts = read_json(paths.predictions(task.name, "finetuned", "run")).get("train_label_counts", {})
    rows, facts = [], []
    for split_name in EVAL_SPLITS:
        if all(split_name in metrics[phase] for phase in PHASES):
            records = {phase: read_json(paths.predictions(task.name, phase, split_name)) for phase in PHASES}
            scores = {phase: metrics[phase][split_name] for phase in PHASES}
            split_rows, split_facts = compare_split(task, split_name, scores, records, seed, counts)
            rows += split_rows
            facts.append(split_facts)
    return metrics, rows, facts


def protocol_line(task: Task, params: Params) -> str:
    """Which data protocol produced a task's results, and why (docs/protocol.md)."""
    reserved = params.data.reserved_articles[task.name]
    if not reserved:
        return (f"- `{task.name}` protocol: official: trained on a draw of the train split, scored on the official "
                "validation set.")
    return (f"- `{task.name}` protocol: reserved articles: {reserved} whole articles of the official validation set "
            f"(a data.seed draw) are split into training and development articles, and only the other articles are "
            f"scored (data.reserved_articles.{task.name}). Why: the train data at hand holds unanswerable questions "
            "in too few articles, so a draw from it would let the article predict the answer; every validation "
            "article holds both kinds, and the training draw takes both from every article it uses.")


def report(params: Params) -> None:
    """report/summary.{md,png,json}: task x split x headline metric: baseline, zero-shot, fine-tuned and change, with
    clustered intervals from the predictions. Prints summary.md, whose marked block is README.md's."""
    from tuneval.report.summary import write_report

    tasks = [get_task(name) for name in params.tasks]
    rows, facts, runs = [], [], {}
    for task in tasks:
        metrics, task_rows, task_facts = compare_phases(task, params.data.seed, params.report.allow_mixed_routes)
        rows += task_rows
        facts += task_facts
        runs[task.name] = {phase: metrics[phase]["run"] for phase in PHASES}
    write_report(rows, facts, tasks, runs, params, paths.SUMMARY_MD, paths.SUMMARY_PNG,
                 paths.SUMMARY_MD.with_suffix(".json"), abstention_png=paths.ABSTENTION_PNG,
                 protocol_lines=[protocol_line(task, params) for task in tasks])
    print(paths.SUMMARY_MD.read_text())
