"""metrics/summary.md and metrics/summary.png: zero-shot vs fine-tuned, per task, split and metric."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuneval.config import Params
from tuneval.io import atomic_path, write_text

HEADLINES = {  # metrics shown in the report, in order; scale: fractions (SST-2) or percent (SQuAD, BLEU...)
    "sst2": ["accuracy", "precision", "recall", "f1", "macro_f1"],
    "squad_v2": ["exact", "f1", "HasAns_f1", "NoAns_f1", "best_f1", "bleu", "rougeL", "meteor"],
}


def comparison_rows(metrics: dict[str, dict[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Flat rows: task, split, metric, zeroshot, finetuned, delta."""
    rows = []
    for task, phases in metrics.items():
        for split, scores in phases["finetuned"].items():
            if not isinstance(scores, dict) or split == "conventions":
                continue
            for key in HEADLINES.get(task, sorted(scores)):
                before = phases["zeroshot"].get(split, {}).get(key)
                after = scores.get(key)
                if isinstance(before, int | float) and isinstance(after, int | float):
                    rows.append({"task": task, "split": split, "metric": key, "zeroshot": before,
                                 "finetuned": after, "delta": after - before})
    return rows


def write_report(metrics: dict, params: Params, md_path: Path, png_path: Path) -> None:
    rows = comparison_rows(metrics)
    lines = [
        f"# tuneval summary: {params.model.name}",
        "",
        f"lr {params.lr}, {params.epochs} epochs, batch size {params.batch_size}, seed {params.seed}, "
        f"data `{params.data.source}`, {params.eval.num_fewshot}-shot evaluation. SST-2 metrics are "
        "fractions; SQuAD v2 exact/F1 (official script semantics), BLEU, ROUGE and METEOR are percentages.",
        "",
        "| task | split | metric | zero-shot | fine-tuned | Δ |",
        "| --- | --- | --- | ---: | ---: | ---: |",
    ]
    lines += [f"| {r['task']} | {r['split']} | {r['metric']} | {r['zeroshot']:.4f} | {r['finetuned']:.4f} "
              f"| {r['delta']:+.4f} |" for r in rows]
    write_text(md_path, "\n".join(lines) + "\n")
    _plot(rows, png_path)


def _plot(rows: list[dict[str, Any]], png_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({(r["task"], r["split"]) for r in rows})
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(5.5 * max(len(panels), 1), 4), squeeze=False)
    for ax, (task, split) in zip(axes[0], panels, strict=False):
        sub = [r for r in rows if r["task"] == task and r["split"] == split]
        xs = range(len(sub))
        ax.bar([x - 0.2 for x in xs], [r["zeroshot"] for r in sub], 0.4, label="zero-shot", color="#9aa5b1")
        ax.bar([x + 0.2 for x in xs], [r["finetuned"] for r in sub], 0.4, label="fine-tuned", color="#2f6fb0")
        ax.set_xticks(list(xs), [r["metric"] for r in sub], rotation=35, ha="right")
        ax.set_title(f"{task} ({split})")
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
