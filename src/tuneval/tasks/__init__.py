"""Tasks are data: one YAML file each (prompt, choices or stop string, schema), read into a `Task`."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from tuneval.errors import TaskError

TASK_DIR = Path(__file__).parent
TASK_NAMES = tuple(sorted(p.stem for p in TASK_DIR.glob("*.yaml")))


SCALES = {"fraction": 4, "percent": 2}  # metric scale -> decimals shown in reports
BASELINES = (None, "majority_class", "always_abstain")  # trivial predictors a report sets beside every result


@dataclass(frozen=True)
class MetricSpec:
    """The task's own choice of metrics: `headline` keys (of the engine's scores) are what the console, the
    report, the README table and the model card show, in order; `hub` gives each its model-index type and name."""

    scale: str = "fraction"  # fraction (0-1) | percent (0-100)
    headline: list[str] = field(default_factory=list)
    hub: dict[str, dict[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.scale not in SCALES:
            raise TaskError(f"metrics.scale = {self.scale!r}; expected one of {', '.join(SCALES)}")
        unknown = sorted(set(self.hub) - set(self.headline))
        if unknown:
            raise TaskError(f"metrics.hub names {unknown}, which are not in metrics.headline {self.headline}")

    @property
    def decimals(self) -> int:
        return SCALES[self.scale]

    def hub_type(self, key: str) -> str:
        """model-index metric type (e.g. exact_match), the key itself when the task names none."""
        return self.hub.get(key, {}).get("type", key)

    def display_name(self, key: str) -> str:
        return self.hub.get(key, {}).get("name", key)


@dataclass(frozen=True)
class Task:
    name: str
    hub_dataset: str
    kind: str  # multiple_choice | generate
    id_field: str
    schema: dict[str, Any]
    prompt: str
    fewshot_separator: str = "\n\n"
    # multiple_choice
    label_field: str | None = None
    labels: list[int] = field(default_factory=list)
    label_names: list[str] = field(default_factory=list)
    choices: list[str] = field(default_factory=list)
    stratify_by: str | None = None
    # generate
    answer_prefix: str = " "
    answers_field: str | None = None  # gold answers, SQuAD's layout: {text: [...], answer_start: [...]}
    answers_in: str | None = None  # the field answer_start indexes (checked when data is loaded)
    abstain: str | None = None
    stop: str | None = None
    truncate_field: str | None = None
    group_by: str | None = None
    # the study: how examples cluster (field -> unit name, coarsest first; empty = independent examples), and
    # the trivial baseline every result is shown beside (majority_class | always_abstain)
    clusters: dict[str, str] = field(default_factory=dict)
    baseline: str | None = None
    # what to report (tasks own their metrics): see MetricSpec
    metrics: MetricSpec = field(default_factory=MetricSpec)

    def __post_init__(self) -> None:
        if isinstance(self.metrics, dict):  # as read from the YAML
            object.__setattr__(self, "metrics", MetricSpec(**self.metrics))
        if self.baseline not in BASELINES:
            raise TaskError(f"task {self.name}: baseline = {self.baseline!r}; expected one of {BASELINES}")
        if self.baseline == "always_abstain" and self.abstain is None:
            raise TaskError(f"task {self.name}: baseline always_abstain needs an `abstain` answer")
        if self.kind == "generate" and self.answers_field not in self.schema:
            raise TaskError(f"task {self.name}: a generate task needs `answers_field` naming a schema column "
                            f"(got {self.answers_field!r}; schema: {list(self.schema)})")

    def abstains(self, example: dict[str, Any]) -> bool:
        """True for an example whose gold answer is to abstain (SQuAD v2's unanswerable questions)."""
        return self.abstain is not None and not self.gold_answers(example)

    def format_prompt(self, example: dict[str, Any]) -> str:
        """The prompt for one normalized example (no trailing space: continuations start with one)."""
        return self.prompt.format(**example)

    def gold_answers(self, example: dict[str, Any]) -> list[str]:
        """The gold answers (`answers_field`'s texts); an empty list = unanswerable."""
        return list(example[self.answers_field]["text"]) if self.answers_field else []

    def target(self, example: dict[str, Any]) -> str:
        """The text the model is trained to produce after the prompt."""
        if self.kind == "multiple_choice":
            return self.choices[self.labels.index(example[self.label_field])]
        answers = self.gold_answers(example)
        answer = answers[0] if answers else self.abstain
        return f"{self.answer_prefix}{answer}{self.stop or ''}"

    def to_answer(self, generated: str) -> str:
        """Generated text -> answer for scoring: cut at `stop`, strip, abstention -> "" (no answer)."""
        if self.stop and self.stop in generated:
            generated = generated[: generated.index(self.stop)]
        answer = generated.strip()
        return "" if self.abstain is not None and answer.lower() == self.abstain.lower() else answer


@cache
def get_task(name: str) -> Task:
    """Load `tasks/<name>.yaml`; unknown names list what exists."""
    path = TASK_DIR / f"{name}.yaml"
    if not path.is_file():
        raise TaskError(f"unknown task {name!r}; defined tasks: {', '.join(TASK_NAMES)} (in {TASK_DIR})")
    return Task(**yaml.safe_load(path.read_text()))


def demonstration(task: Task, example: dict[str, Any]) -> str:
    """A solved example for few-shot prompts: prompt + target without the stop string."""
    target = task.target(example)
    if task.stop and target.endswith(task.stop):
        target = target[: -len(task.stop)]
    return task.format_prompt(example) + target
