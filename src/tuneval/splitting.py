"""The split stage: prepared train data -> the seeded 80/20 split (training pool | development) and the training draw.

SQuAD v2's split keeps whole articles on one side and stratifies articles by whether they hold unanswerable
questions. Its training draw takes both kinds from the same articles, in the study's proportion, spread evenly over
the articles; a draw in which the article could predict the answer is refused before any model runs (`check_draw`).
Draws are nested: the first n examples of one seeded order, so a smaller draw lies inside a larger one.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from typing import Any

from tuneval import paths
from tuneval.config import Params, SplitConfig
from tuneval.data import composition, draw
from tuneval.errors import DataError
from tuneval.io import read_jsonl, write_jsonl
from tuneval.tasks import Task, get_task

Rows = list[dict[str, Any]]


def split(task_name: str, params: Params) -> None:
    """data/split/<task>/: pool.jsonl (the train side: few-shot demonstrations), train.jsonl (the training draw,
    data.train_examples with data.draw_seed) and test.jsonl (the development side, drawn to data.test_examples)."""
    task = get_task(task_name)
    source = paths.prepared(task.name, "train")
    data = params.data
    pool, test = split_rows(task, read_jsonl(source), params.split.test_size, data.seed, str(source))
    train = draw_training(task, pool, data.train_examples[task.name], data.unanswerable_share, data.draw_seed,
                          str(source))
    if task.group_by:
        check_draw(task, train, params.split, data.unanswerable_share)
        scored = read_jsonl(paths.prepared(task.name, "validation"))
        check_disjoint(task, {"training": pool, "development": test, "scored": scored})
    test = draw(test, data.test_examples, f"{data.seed}-test")
    for name, rows in (("pool", pool), ("train", train), ("test", test)):
        write_jsonl(paths.split_file(task.name, name), rows)
    print(f"{task.name} (data.seed {data.seed}, data.draw_seed {data.draw_seed}): train {len(train):,} of "
          f"{len(pool):,}{_composition(task, train)}; test {len(test):,}{_composition(task, test)}")
    signal = length_signal(task, train)
    if signal:
        print(f"{task.name}: how well length alone separates the training draw's classes (AUROC, 0.5 = not at all): "
              + ", ".join(f"{field} {auroc:.3f}" for field, auroc in signal.items()))


def length_signal(task: Task, rows: Rows) -> dict[str, float]:
    """Per text field of the prompt: the AUROC of its length in words as a predictor of the second class
    (SST-2: positive; SQuAD v2: unanswerable). Near 0.5, length is no shortcut to the label; {} for a task with
    more than two classes or a draw holding one class."""
    from sklearn.metrics import roc_auc_score

    if task.abstain is not None:
        target = [int(task.abstains(row)) for row in rows]
    elif task.label_field and len(task.labels) == 2:
        target = [int(row[task.label_field] == task.labels[1]) for row in rows]
    else:
        return {}
    if len(set(target)) < 2:
        return {}
    fields = [name for name, kind in task.schema.items() if kind == "str" and "{" + name + "}" in task.prompt]
    return {name: float(roc_auc_score(target, [len(str(row[name]).split()) for row in rows])) for name in fields}


def _composition(task: Task, rows: Rows) -> str:
    facts = composition(task, rows)
    return f" ({facts})" if facts else ""


def training_order(task: Task, rows: Rows, share: float, seed: int) -> Rows:
    """Every row a training draw can take, in the seeded order draws take them (a draw of n = the first n).

    Without articles: a seeded permutation. With articles and abstentions: each article's questions in an order that
    keeps the unanswerable share at `share` in every prefix (an article's sequence stops where the kind it needs
    next runs out), then the articles interleaved round-robin in a seeded order, so any prefix spreads evenly."""
    rng = random.Random(f"{seed}-train")
    if not task.group_by or task.abstain is None:
        # sample(range(N), N) draws like sample(range(N), n) for its first n (CPython's pool method, used for
        # both at these sizes): the default SST-2 draw of 400 is the one drawn before draws were nested
        return [rows[i] for i in rng.sample(range(len(rows)), len(rows))]
    articles: dict[str, dict[bool, Rows]] = defaultdict(lambda: {True: [], False: []})
    for row in rows:
        articles[row[task.group_by]][task.abstains(row)].append(row)
    sequences = []
    for title in sorted(articles):
        kinds = articles[title]
        for kind in (True, False):
            rng.shuffle(kinds[kind])
        sequences.append(_interleave(kinds[True], kinds[False], share))
    rng.shuffle(sequences)
    return [seq[i] for i in range(max(map(len, sequences), default=0)) for seq in sequences if i < len(seq)]


def _interleave(unanswerable: Rows, answerable: Rows, share: float) -> Rows:
    """The j-th question (from 1) is unanswerable when round(j * share) grows at j, so every prefix holds
    round(j * share) of them; stops where the kind due next is used up."""
    out: Rows = []
    used = 0
    while True:
        j = len(out) + 1
        wants_unanswerable = math.floor(j * share + 0.5) > used
        source = unanswerable if wants_unanswerable else answerable
        taken = used if wants_unanswerable else len(out) - used
        if taken >= len(source):
            return out
        out.append(source[taken])
        used += wants_unanswerable


def draw_training(task: Task, rows: Rows, n: int | None, share: float, seed: int, origin: str) -> Rows:
    """The first n rows of `training_order` (all when n is None), in file order; DataError when there are fewer."""
    if n is None and (not task.group_by or task.abstain is None):
        return list(rows)
    order = training_order(task, rows, share, seed)
    if n is not None and n > len(order):
        kind = (f" with {share:.1%} unanswerable in every article (data.unanswerable_share)"
                if task.abstain is not None and task.group_by else "")
        raise DataError(
            f"{origin}: data.train_examples.{task.name} = {n}, but the train side of the split can give at most "
            f"{len(order)} questions{kind}: lower data.train_examples.{task.name}, or use more data (data.source, "
            "data.reserved_articles)"
        )
    keep = {id(row) for row in order[:n]}
    return [row for row in rows if id(row) in keep]


def check_draw(task: Task, rows: Rows, rules: SplitConfig, share: float) -> None:
    """Refuse a training draw in which the article could predict the answer: fewer than split.min_train_articles
    articles, one supplying more than split.max_article_share, or (with abstentions) one holding a single kind."""
    counts = Counter(row[task.group_by] for row in rows)
    where = f"the training draw of {task.name} ({len(rows)} questions)"
    if len(counts) < rules.min_train_articles:
        raise DataError(f"{where} spans {len(counts)} articles ({_shares(counts, len(rows))}); split."
                        f"min_train_articles = {rules.min_train_articles}: use more articles (data.reserved_articles)"
                        f" or a larger data.train_examples.{task.name}")
    title, top = counts.most_common(1)[0]
    if top / len(rows) > rules.max_article_share:
        raise DataError(f"{where}: article {title!r} supplies {top} ({top / len(rows):.1%}), more than split."
                        f"max_article_share = {rules.max_article_share:.0%} ({_shares(counts, len(rows))})")
    if task.abstain is None:
        return
    unanswerable = Counter(row[task.group_by] for row in rows if task.abstains(row))
    for title, n in sorted(counts.items()):
        if unanswerable[title] in (0, n):
            kind = "unanswerable" if unanswerable[title] else "answerable"
            raise DataError(f"{where}: article {title!r} supplies {n} questions, all {kind} (data.unanswerable_share"
                            f" = {share}): the title would predict the answer. Every article must hold both kinds: "
                            f"a larger data.train_examples.{task.name} (at least 2 per article), or other data")


def _shares(counts: Counter, total: int) -> str:
    return ", ".join(f"{title} {n / total:.1%}" for title, n in counts.most_common(5)) + (
        ", ..." if len(counts) > 5 else "")


def check_disjoint(task: Task, sides: dict[str, Rows]) -> None:
    """Training, development and scored sets share no example id and no article title."""
    names = list(sides)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            for field, what in (("id", "example"), (task.group_by, "article")):  # prepared rows key on `id`
                common = {r[field] for r in sides[first]} & {r[field] for r in sides[second]}
                if common:
                    raise DataError(f"{task.name}: the {first} and {second} sets share {len(common)} {what}(s), e.g. "
                                    f"{sorted(common)[0]!r}: they must be disjoint (data.reserved_articles, "
                                    "data.files)")


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
