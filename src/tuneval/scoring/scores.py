"""Metrics from prediction records alone: what the score stage runs, so a metric change never reruns a model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tuneval.scoring import abstention as A
from tuneval.scoring import metrics as M
from tuneval.tasks import Task


def score(task: Task, predictions: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Metrics from prediction records alone.

    SQuAD v2 style records get the official scores (greedy: exact, f1, ...; best_exact / best_f1 at the
    in-sample best threshold), the answer rate, the abstention metrics of :mod:`tuneval.scoring.abstention`
    (heldout_exact, heldout_f1 with heldout_*_thresholds and heldout_rule; no_answer_auroc) and, over the
    answerable questions, BLEU / ROUGE / METEOR."""
    if task.kind == "multiple_choice":
        name_to_label = dict(zip(task.label_names, task.labels, strict=True))
        return M.classification_metrics(
            [name_to_label[p["actual"]] for p in predictions],
            [name_to_label[p["predicted"]] for p in predictions],
            task.label_names,
        )
    gold = {p["id"]: p["gold"] for p in predictions}
    preds = {p["id"]: p["prediction"] for p in predictions}
    na_probs = {p["id"]: p["no_answer_prob"] for p in predictions}
    result = M.squad_v2_scores(gold, preds, na_probs)
    result["answered"] = M.answer_rate(preds, na_probs)
    result.update(A.abstention_scores(task, predictions))
    answerable = [p for p in predictions if p["gold"]]
    if answerable:
        result.update(M.generation_metrics([p["gold"] for p in answerable],
                                           [p["prediction"] for p in answerable]))
    return result
