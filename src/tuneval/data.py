"""The prepare stage: raw data -> validated, normalized JSONL under data/prepared/<task>.

Every cap is a seeded random draw (`data.seed`), never the head of a file, and keeps the file's order. With
`data.reserved_articles.<task>` set, a seeded draw of whole articles of the official validation set becomes the
training data (the split stage divides it into training and development articles) and the other articles are
scored: the protocol when the train data cannot give a draw in which the article does not predict the answer.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

from tuneval import paths
from tuneval.config import Params
from tuneval.errors import DataError
from tuneval.io import atomic_path, read_jsonl, write_jsonl
from tuneval.tasks import Task, get_task

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "data" / "sample"
RAW_SPLITS = ("train", "validation")
_TYPES = {"int": int, "str": str, "list[str]": list, "list[int]": list}


def prepare(task_name: str, params: Params) -> None:
    """Raw data (sample | local | hub) -> validated, normalized data/prepared/<task>/{train,validation}; the
    validation split drawn to data.validation_examples.<task> (seeded, file order kept)."""
    task = get_task(task_name)
    reserved = params.data.reserved_articles[task.name]
    splits = ("validation",) if reserved else RAW_SPLITS  # reserved articles replace the train file
    loaded = {split: load_raw(task, split, params) for split in splits}  # validate all before writing any
    rows, origin = loaded["validation"]
    if reserved:
        train, rows = reserve_articles(task, rows, reserved, params.data.seed, origin)
        loaded["train"] = train, f"{origin} ({reserved} reserved articles)"
        origin = f"{origin} (the other {len({r[task.group_by] for r in rows})} articles)"
    wanted = params.data.validation_examples[task.name]
    loaded["validation"] = draw(rows, wanted, f"{params.data.seed}-validation"), origin
    with atomic_path(paths.prepared(task.name, "train").parent) as out:
        out.mkdir()
        for split in RAW_SPLITS:
            rows, origin = loaded[split]
            write_jsonl(out / f"{split}.jsonl", normalize(task, rows))
            facts = composition(task, rows)
            print(f"{task.name}/{split}: {len(rows):,} rows from {origin}" + (f" ({facts})" if facts else ""))


def reserve_articles(task: Task, rows: list[dict[str, Any]], n: int, seed: int, origin: str,
                     ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(rows of a seeded draw of `n` whole articles, rows of the others), each in file order."""
    if not task.group_by:
        raise DataError(f"data.reserved_articles.{task.name} = {n}: {task.name} has no articles (no group_by in "
                        "its task YAML); leave it empty")
    titles = sorted({row[task.group_by] for row in rows})
    if not 2 <= n <= len(titles) - 2:
        raise DataError(f"{origin}: data.reserved_articles.{task.name} = {n}, but the file holds {len(titles)} "
                        f"articles: expected 2 to {len(titles) - 2}, so that training, development and scored "
                        "articles are all non-empty")
    kept = set(random.Random(f"{seed}-reserve").sample(titles, n))
    return [r for r in rows if r[task.group_by] in kept], [r for r in rows if r[task.group_by] not in kept]


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
