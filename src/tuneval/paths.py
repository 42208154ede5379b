"""Where every stage reads and writes (relative to the repository root, as dvc.yaml runs stages)."""

from pathlib import Path

BASE_MODEL = Path("models/base")
SUMMARY_MD = Path("report/summary.md")  # not under metrics/: the report stage depends on that whole directory
SUMMARY_PNG = Path("report/summary.png")
ABSTENTION_PNG = Path("report/abstention.png")  # the no-answer probability per class and phase (tasks that abstain)


def prepared(task: str, split: str) -> Path:
    return Path("data/prepared") / task / f"{split}.jsonl"


def split_file(task: str, split: str) -> Path:
    return Path("data/split") / task / f"{split}.jsonl"


def eval_rows_file(task: str, split: str) -> Path:
    """`test` is our 80/20 holdout; `validation` is the official dev set, untouched by the split."""
    return split_file(task, "test") if split == "test" else prepared(task, "validation")


def finetuned(task: str) -> Path:
    return Path("models") / task


def predictions(task: str, phase: str, split: str) -> Path:
    return Path("predictions") / task / phase / f"{split}.json"


def metrics_file(task: str, name: str) -> Path:
    return Path("metrics") / task / f"{name}.json"


def live_dir(task: str) -> Path:
    return Path("dvclive") / task


def publish_dir(task: str) -> Path:
    return Path("publish") / task


def checkpoints(task: str) -> Path:
    """Trainer checkpoints (git-ignored, not a DVC output, so they survive a killed run); pruned when it finishes."""
    return Path("checkpoints") / task
