"""Raw data -> validated, normalized JSONL (prepare) -> seeded 80/20 split and training draw (split).

Every cap is a seeded random draw (`data.seed`), never the head of a file, and keeps the file's order. SQuAD v2's
split keeps whole articles on one side and stratifies articles by whether they hold unanswerable questions, so
both sides have abstentions for any seed; its training draw holds `data.unanswerable_share` of them.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from pathlib import Path
from typing import Any

from tuneval.config import Params
from tuneval.errors import DataError
from tuneval.io import read_jsonl
from tuneval.tasks import Task

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "data" / "sample"
RAW_SPLITS = ("train", "validation")
_TYPES = {"int": int, "str": str, "list[str]": list, "list[int]": list}


def load_raw(task: Task, split: str, params: Params) -> tuple[list[dict[str, Any]], str]:
    """Rows of one raw split and a description of where they came from."""
    source = params.data.source
    if source == "hub":
        rows, origin = _load_from_hub(task, split), f"hub:{task.hub_dataset}[{split}]"
    else:
        root = SAMPLE_DIR if source == "sample" else Path(params.data.local_dir)
        path = root / params.data.files[task.name][split]
        rows, origin = read_jsonl(path), str(path)
    validate_rows(task, rows, origin, labelled=True)
    return rows, origin


def draw(rows: list[dict[str, Any]], n: int | None, seed: int | str) -> list[dict[str, Any]]:
    """A seeded random draw of n rows (all when n is None or >= len), in their original order."""
    if n is None or n >= len(rows):
        return list(rows)
    keep = set(random.Random(seed).sample(range(len(rows)), n))
    return [row for i, row in enumerate(rows) if i in keep]


def draw_training(task: Task, rows: list[dict[str, Any]], n: int | None, share: float, seed: int,
                  origin: str) -> list[dict[str, Any]]:
    """The fine-tuning draw: n rows; for a task with abstentions, round(share * n) of them unanswerable.

    DataError, naming the numbers, when the train side cannot give that many of either kind."""
    if task.abstain is None or n is None:
        return draw(rows, n, f"{seed}-train")
    unanswerable = [row for row in rows if task.abstains(row)]
    answerable = [row for row in rows if not task.abstains(row)]
    wanted = round(share * n)
    if wanted > len(unanswerable) or n - wanted > len(answerable):
        raise DataError(
            f"{origin}: data.train_examples.{task.name} = {n} with data.unanswerable_share = {share} needs {wanted} "
            f"unanswerable and {n - wanted} answerable questions, but the train side of the split holds "
            f"{len(unanswerable)} and {len(answerable)}: lower data.train_examples.{task.name} or the share, or use "
            "more data (data.source)"
        )
    keep = {id(r) for r in draw(unanswerable, wanted, f"{seed}-unanswerable")}
    keep |= {id(r) for r in draw(answerable, n - wanted, f"{seed}-answerable")}
    return [row for row in rows if id(row) in keep]


def _load_from_hub(task: Task, split: str) -> list[dict[str, Any]]:
    """The real hub path (`datasets.load_dataset`); offline it fails with the reason."""
    import datasets

    try:
        ds = datasets.load_dataset(task.hub_dataset, split=split)
    except Exception as err:  # noqa: BLE001 - any hub/network failure becomes one clear message
        raise DataError(
            f"could not load {task.hub_dataset} [{split}] from the Hugging Face Hub ({type(err).__name__}: "
            f"{err}). Without network access use data.source=local with data.local_dir pointing at JSONL "
            "files in the same schema, or data.source=sample."
        ) from err
    return [dict(r) for r in ds]


def validate_rows(task: Task, rows: list[dict[str, Any]], origin: str, labelled: bool) -> None:
    """Check columns, types, labels, answer offsets and unique ids; errors name the file and row."""
    seen: dict[Any, int] = {}
    for i, row in enumerate(rows, start=1):
        where = f"{origin}: row {i}"
        for column, kind in task.schema.items():
            if column not in row:
                raise DataError(f"{where}: missing column {column!r} (expected columns: {list(task.schema)})")
            _check_type(row[column], kind, f"{where}: column {column!r}")
        key = row[task.id_field]
        if key in seen:
            raise DataError(f"{where}: duplicate {task.id_field} {key!r} (first seen in row {seen[key]})")
        seen[key] = i
        if task.label_field and labelled and row[task.label_field] not in task.labels:
            raise DataError(
                f"{where}: {task.label_field} = {row[task.label_field]!r} is not one of {task.labels}"
            )
        if task.answers_field and task.answers_in:
            _check_answers(row, task.answers_field, task.answers_in, where)


def _check_type(value: Any, kind: Any, where: str) -> None:
    if isinstance(kind, dict):
        if not isinstance(value, dict):
            raise DataError(f"{where}: expected an object with keys {list(kind)}, got {type(value).__name__}")
        for sub, sub_kind in kind.items():
            if sub not in value:
                raise DataError(f"{where}: missing key {sub!r}")
            _check_type(value[sub], sub_kind, f"{where}.{sub}")
        return
    expected = _TYPES[kind]
    if not isinstance(value, expected) or isinstance(value, bool):
        raise DataError(f"{where}: expected {kind}, got {type(value).__name__} {value!r:.60}")
    if kind.startswith("list["):
        inner = _TYPES[kind[5:-1]]
        if not all(isinstance(v, inner) and not isinstance(v, bool) for v in value):
            raise DataError(f"{where}: expected {kind}, got {value!r:.80}")


def _check_answers(row: dict[str, Any], field: str, text_field: str, where: str) -> None:
    texts, starts = row[field]["text"], row[field]["answer_start"]
    if len(texts) != len(starts):
        raise DataError(f"{where}: {field}.text has {len(texts)} entries but answer_start has {len(starts)}")
    source = row[text_field]
    for text, start in zip(texts, starts, strict=True):
        if source[start : start + len(text)] != text:
            raise DataError(
                f"{where}: answer {text!r} is not at answer_start {start} of its {text_field} "
                f"(found {source[start:start + len(text)]!r})"
            )


def normalize(task: Task, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep the schema columns and add a string `id` every later stage keys on."""
    return [{"id": str(r[task.id_field]), **{c: r[c] for c in task.schema if c != "id"}} for r in rows]


def split_rows(task: Task, rows: list[dict[str, Any]], test_size: float, seed: int, origin: str):
    """80/20 split: stratified by label, or grouped (whole articles on one side). Returns (train, test)."""
    if task.group_by:
        strata = {row[task.group_by]: False for row in rows}
        for row in rows:
            strata[row[task.group_by]] |= task.abstains(row)
        return _grouped_split(rows, task.group_by, strata, test_size, seed, origin)
    return _stratified_split(rows, task.stratify_by, test_size, seed, origin)


def _stratified_split(rows, label: str | None, test_size: float, seed: int, origin: str):
    from sklearn.model_selection import train_test_split

    labels = [r[label] for r in rows] if label else None
    if labels is not None:
        counts = Counter(labels)
        n_test = math.ceil(len(rows) * test_size)  # how scikit-learn sizes the test side
        n_train = len(rows) - n_test
        if len(counts) < 2 or min(counts.values()) < 2 or min(n_test, n_train) < len(counts):
            raise DataError(
                f"{origin}: cannot stratify {len(rows)} rows by {label!r} (label counts {dict(counts)}): "
                "need at least 2 labels with 2+ rows each, and train and test sides that can hold one of each"
            )
    train, test = train_test_split(rows, test_size=test_size, random_state=seed, stratify=labels)
    return train, test


def _grouped_split(rows, group: str, strata: dict[str, bool], test_size: float, seed: int, origin: str):
    """Whole groups on one side, stratified by each group's stratum (SQuAD v2: does the article hold unanswerable
    questions?). Per stratum the groups are shuffled with `seed` and moved to test until test holds >= test_size of
    that stratum's rows; every stratum with >= 2 groups keeps at least one group on each side."""
    if len(strata) < 2:
        raise DataError(f"{origin}: cannot split by {group!r}: only {len(strata)} distinct value(s)")
    flagged = sorted(g for g, flag in strata.items() if flag)
    if len(flagged) == 1:
        raise DataError(f"{origin}: only one {group} ({flagged[0]!r}) holds unanswerable questions, so they cannot "
                        "be on both sides of the split; use data with abstentions in two or more of them")
    sizes = Counter(r[group] for r in rows)
    rng = random.Random(seed)
    test_groups: set[str] = set()
    for flag in (True, False):
        groups = sorted(g for g, f in strata.items() if f is flag)
        rng.shuffle(groups)
        total, n_test = sum(sizes[g] for g in groups), 0
        for g in groups[:-1]:  # never move a whole stratum
            test_groups.add(g)
            n_test += sizes[g]
            if n_test >= test_size * total:
                break
    train = [r for r in rows if r[group] not in test_groups]
    test = [r for r in rows if r[group] in test_groups]
    return train, test


def composition(task: Task, rows: list[dict[str, Any]]) -> str:
    """What a split is made of: distinct values of each cluster field and the unanswerable share, e.g.
    `35 articles, 452 contexts, 50.5% unanswerable`; the label shares for classification tasks."""
    if not rows:
        return "empty"
    parts = [f"{len({str(r[field]) for r in rows}):,} {unit}s" for field, unit in task.clusters.items()]
    if task.abstain is not None:
        parts.append(f"{100 * sum(task.abstains(r) for r in rows) / len(rows):.1f}% unanswerable")
    if task.label_field:
        counts = Counter(r[task.label_field] for r in rows)
        parts += [f"{100 * counts[label] / len(rows):.1f}% {name}"
                  for label, name in zip(task.labels, task.label_names, strict=True)]
    return ", ".join(parts)
