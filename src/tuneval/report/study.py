"""The report and publish stages' shared reading: both phases' metrics and predictions of a task, paired."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuneval import paths
from tuneval.config import EVAL_SPLITS, PHASES, Params
from tuneval.io import read_json
from tuneval.tasks import Task, get_task

CURVES = Path("report/curves")  # `tuneval curve`'s default output: not a stage output, the report reads it if there


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


def curve_findings(tasks: list[Task]) -> list[str]:
    """One finding per committed learning curve, generated from its numbers: report/curves/<task>/curve.json (the
    task's headline metric, written by `tuneval curve`), then report/curves/<task>/<metric>/curve.json (other
    metrics of the same sweep, e.g. SQuAD v2's answer rate). A curve whose scored examples are not this study's is
    named as stale instead."""
    lines = []
    for task in tasks:
        root = CURVES / task.name
        for path in [root / "curve.json", *sorted(root.glob("*/curve.json"))]:
            if path.is_file():
                lines.append(_curve_finding(task, path))
    return lines


def _curve_finding(task: Task, path: Path) -> str:
    from tuneval.report.curve import ids_digest

    curve = read_json(path)
    scored = paths.predictions(task.name, "finetuned", curve["split"])
    if not scored.is_file() or ids_digest(read_json(scored)) != curve["examples"]["ids_sha256"]:
        return (f"- `{task.name}` learning curve ({path.as_posix()}): scored other examples than this study; "
                "rerun the sweep and `tuneval curve` (docs/protocol.md#learning-curves).")
    return describe_curve(task.name, curve)


def describe_curve(task_name: str, curve: dict[str, Any]) -> str:
    """`- <task> learning curve (<param>, runs per point): <metric> from A at x0 to B at x1, ...` from curve.json."""
    from tuneval.tasks import SCALES

    d = SCALES[curve["scale"]]
    points = sorted(curve["points"], key=lambda p: p["value"])
    first, last = points[0], points[-1]
    means = [p["mean"] for p in points]
    shape = ("rising at every step" if all(b > a for a, b in zip(means, means[1:], strict=False)) else
             "falling at every step" if all(b < a for a, b in zip(means, means[1:], strict=False)) else "not monotone")
    sds = [p["sd"] for p in points if p["sd"] is not None]
    widths = [p["high"] - p["low"] for p in points if p["low"] is not None and p["high"] is not None]
    zeroshot, baseline = curve["reference"]["zeroshot"]["value"], curve["reference"]["baseline"]["value"]

    def relation(value: float, other: float | None, name: str) -> str:
        if other is None:
            return f"no {name}"
        return f"{'above' if value > other else 'below' if value < other else 'level with'} {name} ({other:.{d}f})"

    steps = [(b["mean"] - a["mean"], a["value"], b["value"]) for a, b in zip(points, points[1:], strict=False)]
    big = max(steps, key=lambda step: abs(step[0]), default=None)
    largest = f" (largest step {big[0]:+.{d}f}, from {big[1]:g} to {big[2]:g})" if big and len(steps) > 1 else ""
    runs = sorted({p["runs"] for p in points})
    spread = f"seed sd up to {max(sds):.{d}f}" if sds else "one run per point"
    noise = f"; examples' 95% intervals {min(widths):.{d}f}-{max(widths):.{d}f} wide" if widths else ""
    return (f"- `{task_name}` learning curve ({curve['param']}, {'/'.join(map(str, runs))} runs per point, "
            f"{len(points)} values): {curve['metric']} goes from {first['mean']:.{d}f} at {first['value']:g} to "
            f"{last['mean']:.{d}f} at {last['value']:g}, {shape}{largest}; {spread}{noise}. The largest value is "
            f"{relation(last['mean'], zeroshot, 'zero-shot')} and {relation(last['mean'], baseline, 'the baseline')}.")


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
                 protocol_lines=[protocol_line(task, params) for task in tasks],
                 curve_lines=curve_findings(tasks))
    print(paths.SUMMARY_MD.read_text())
