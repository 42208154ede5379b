"""`tuneval compare`: experiments side by side, with training-seed spread and paired intervals between them.

    tuneval compare EXP_A EXP_B [EXP_C ...] [--task T] [--split S] [--metric M] [--repo DIR] [--json PATH]

Each EXP is a DVC experiment name (as `dvc exp show` / `dvc exp list --all-commits` print it) or any git revision
(branch, tag, commit). For every task, split and headline metric it shows the fine-tuned value of each experiment,
their mean and sample standard deviation (ddof=1: across runs that differ only in their training seed, that is the
seed-to-seed spread), and the zero-shot value when every experiment has the same one. Two experiments are then
compared on the same examples: Δ = B − A with the paired interval of :func:`tuneval.scoring.stats.
paired_intervals`, the same implementation the report uses (whole clusters where the task declares them, e.g.
SQuAD articles: the cluster bootstrap with 30 or more, the cluster jackknife t on G−1 df with fewer; every
interval names its method). By default the pair is each metric's winner (highest value; ties go to the earlier
argument) against its runner-up, and the winner "beats the runner-up by more than noise" only when that interval
excludes 0. That interval is the noise of which test examples were drawn; the spread between training runs is the
sd column (with 2-3 runs itself rough). An argument that is both an experiment name and a git revision means the
experiment.

Files are read from git, `git cat-file blob <commit>:<path>`, not with `dvc.api.read`: metrics and predictions
are git-tracked, so git holds exactly the bytes DVC would return; a git process costs milliseconds per file where
`dvc.api.read` opens a DVC repository (and its index) per call; and git alone resolves branches, tags, commit
prefixes and the refs DVC stores experiments under (``refs/exps/<baseline[:2]>/<baseline[2:]>/<name>``), so
this module needs no DVC import. A file that is a DVC-cached output at some revision (predictions before they
moved to git) is therefore not read there; the error names the revision and the path.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from tuneval.errors import ConfigError, DataError
from tuneval.scoring.abstention import IN_SAMPLE_KEYS, IN_SAMPLE_NOTE, labelled
from tuneval.scoring.stats import (
    LEVEL,
    RESAMPLES,
    Interval,
    Paired,
    align_by_id,
    check_recomputed,
    paired_intervals,
    prediction_statistic,
    resampling,
)
from tuneval.tasks import TASK_NAMES, Task, get_task

PAIRS = ("winner", "all", "first")  # winner vs runner-up per metric | every pair | each against the first
EXP_REF = re.compile(r"^refs/exps/([0-9a-f]{2})/([0-9a-f]{38})/([^/]+)$")  # DVC's ExpRefInfo layout
RUN_KEY = "run"  # the metrics files' run-level entry (not a split)


# --------------------------------------------------------------------------------------- reading revisions
@dataclass(frozen=True)
class Revision:
    """One argument of `tuneval compare`: the name as given, its commit and, for a DVC experiment, its ref."""

    name: str
    commit: str
    ref: str | None = None

    def describe(self) -> str:
        return f"{self.name} ({self.commit[:7]}{', experiment' if self.ref else ''})"


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False)


def experiment_refs(repo: Path) -> dict[str, list[tuple[str, str, str]]]:
    """DVC experiment name -> [(ref, commit, baseline commit)] for every experiment ref in the repository."""
    out = _git(repo, "for-each-ref", "--format=%(refname) %(objectname)", "refs/exps")
    refs: dict[str, list[tuple[str, str, str]]] = {}
    for line in out.stdout.decode().splitlines():
        ref, _, commit = line.partition(" ")
        match = EXP_REF.match(ref)
        if match:  # skips DVC's own bookkeeping refs (refs/exps/exec, celery, temp, stash ...)
            refs.setdefault(match.group(3), []).append((ref, commit, match.group(1) + match.group(2)))
    return refs


def resolve(repo: str | Path, name: str) -> Revision:
    """A DVC experiment name (preferred: what `dvc exp show` prints) or a git revision -> its commit.

    An experiment name used under several baselines resolves to the one on the current HEAD; ConfigError when it
    is unknown, or ambiguous off HEAD."""
    repo = Path(repo)
    if _git(repo, "rev-parse", "--git-dir").returncode != 0:
        raise ConfigError(f"--repo {repo}: not a git repository (run tuneval compare inside the project, or "
                          "point --repo at it)")
    candidates = experiment_refs(repo).get(name, [])
    if len(candidates) > 1:
        head = _git(repo, "rev-parse", "--verify", "--quiet", "HEAD").stdout.decode().strip()
        candidates = [c for c in candidates if c[2] == head] or candidates
    if len(candidates) > 1:
        listed = ", ".join(ref for ref, _, _ in candidates)
        raise ConfigError(f"experiment {name!r} is ambiguous in {repo}: it exists on several baselines ({listed}); "
                          "give its commit instead (dvc exp show prints it)")
    if candidates:
        ref, commit, _ = candidates[0]
        return Revision(name, commit, ref)
    out = _git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{name}^{{commit}}")
    if out.returncode != 0 or not out.stdout.strip():
        raise ConfigError(f"unknown revision or experiment {name!r} in {repo}: it is neither a DVC experiment "
                          "(`dvc exp list --all-commits` lists them) nor a git branch, tag or commit")
    return Revision(name, out.stdout.decode().strip())


def read_json_at(repo: str | Path, rev: Revision, path: str) -> Any:
    """The JSON file `path` (relative to the repository root) as committed at `rev`; DataError naming both."""
    out = _git(Path(repo), "cat-file", "blob", f"{rev.commit}:{path}")
    if out.returncode != 0:
        raise DataError(f"{rev.describe()}: {path} is not in git at that revision ({out.stderr.decode().strip()}). "
                        "Metrics and predictions must be committed (git-tracked, not DVC-cached) for "
                        "tuneval compare to read them; run the pipeline there (dvc exp run) to produce them")
    try:
        return json.loads(out.stdout)
    except ValueError as err:
        raise DataError(f"{rev.describe()}: {path} is not valid JSON ({err})") from err


def has_file(repo: str | Path, rev: Revision, path: str) -> bool:
    return _git(Path(repo), "cat-file", "-e", f"{rev.commit}:{path}").returncode == 0


def metrics_path(task: str, phase: str) -> str:
    return f"metrics/{task}/{phase}.json"


def predictions_path(task: str, phase: str, split: str) -> str:
    return f"predictions/{task}/{phase}/{split}.json"


# ---------------------------------------------------------------------------------------------- the numbers
@dataclass(frozen=True)
class Comparison:
    """Δ = b − a on one metric, both scored on the same examples, with its paired interval."""

    a: str
    b: str
    delta: float
    interval: Interval | None

    @property
    def excludes_zero(self) -> bool:
        return self.interval is not None and self.interval.excludes_zero()


@dataclass(frozen=True)
class MetricRow:
    """One task, split and headline metric across experiments (`values` in argument order)."""

    task: str
    split: str
    metric: str
    scale: str
    n: int
    unit: str  # what the intervals resample: "example", a cluster unit ("article"), or "" (no interval)
    values: dict[str, float]
    zeroshot: float | None  # the experiments' common zero-shot value; None when it differs or is missing
    zeroshot_differs: bool = False
    comparisons: list[Comparison] = field(default_factory=list)
    note: str = ""  # why there is no interval, when there is none
    method: str = ""  # the intervals' method, e.g. "cluster jackknife t, G−1 = 5 df"; "" without one

    @property
    def mean(self) -> float:
        return float(np.mean(list(self.values.values())))

    @property
    def sd(self) -> float | None:
        """Sample standard deviation across the experiments (ddof=1); None with fewer than two."""
        return float(np.std(list(self.values.values()), ddof=1)) if len(self.values) > 1 else None

    def ranking(self) -> list[str]:
        """Experiments by value, best (highest: every headline metric is higher-is-better) first; stable."""
        return sorted(self.values, key=lambda name: -self.values[name])

    @property
    def winner(self) -> str:
        return self.ranking()[0]

    @property
    def runner_up(self) -> str:
        return self.ranking()[1]

    def winner_beats_runner_up(self) -> bool | None:
        """True when the winner-vs-runner-up Δ interval excludes 0; None when that pair was not computed."""
        for comparison in self.comparisons:
            if (comparison.a, comparison.b) == (self.runner_up, self.winner):
                return comparison.excludes_zero
        return None


def pairs_for(names: Sequence[str], values: Mapping[str, float], mode: str) -> list[tuple[str, str]]:
    """(a, b) pairs to compare as Δ = b − a: winner mode (runner-up, winner); all (earlier, later); first."""
    if mode == "winner":
        ranked = sorted(names, key=lambda name: -values[name])
        return [(ranked[1], ranked[0])]
    if mode == "all":
        return list(combinations(names, 2))
    if mode == "first":
        return [(names[0], name) for name in names[1:]]
    raise ConfigError(f"--pairs {mode!r}; expected one of {', '.join(PAIRS)}")


def common_value(entries: Sequence[Mapping[str, Any] | None], key: str) -> float | None:
    """entries[*][key] when every entry has the same number there, else None."""
    values = [entry.get(key) if entry else None for entry in entries]
    if not values or any(not _is_number(v) for v in values):
        return None
    return float(values[0]) if all(math.isclose(v, values[0], rel_tol=1e-12, abs_tol=1e-12) for v in values) else None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_same_examples(task: str, split: str, names: Sequence[str],
                        records: Mapping[str, Sequence[dict[str, Any]]]) -> None:
    """DataError unless every experiment scored the same example ids, once each (names rev and file)."""
    path = predictions_path(task, "finetuned", split)
    for name in names:
        if not all(isinstance(r, dict) and "id" in r for r in records[name]):
            raise DataError(f"{name}: {path} holds a record without an id (expected prediction records)")
    first = names[0]
    first_ids = [r["id"] for r in records[first]]
    for name in names:
        ids = [r["id"] for r in records[name]]
        if len(set(ids)) != len(ids):
            dupes = sorted(str(i) for i, count in Counter(ids).items() if count > 1)[:5]
            raise DataError(f"{name}: {path} scores some examples more than once ({dupes}); rerun its evaluation")
        if set(ids) != set(first_ids):
            only_a, only_b = sorted(set(first_ids) - set(ids), key=str), sorted(set(ids) - set(first_ids), key=str)
            raise DataError(
                f"{first} and {name} did not score the same {task} {split} examples ({path}: {len(first_ids)} vs "
                f"{len(ids)} records; only in {first}: {only_a[:5]}, only in {name}: {only_b[:5]}), so they "
                "cannot be compared example by example; evaluate both on the same split (same data params and "
                "split seed)"
            )


def compare_split(task: Task, split: str, finetuned: Mapping[str, Mapping[str, Any]],
                  records: Mapping[str, Sequence[dict[str, Any]]],
                  zeroshot: Mapping[str, Mapping[str, Any] | None] | None = None,
                  metrics: Sequence[str] | None = None, pairs: str = "winner", resamples: int = RESAMPLES,
                  seed: int = 0, level: float = LEVEL) -> list[MetricRow]:
    """Rows for the task's headline metrics (or `metrics`) on `split`, across the experiments.

    `finetuned` maps each experiment name (in the order to show) to its fine-tuned metrics entry for the split,
    `records` to its prediction records, `zeroshot` to its zero-shot entry (or None). Values are the metrics
    files'; recomputed from the records they must agree (DataError otherwise), or the intervals would be of
    something else."""
    names = list(finetuned)
    if len(names) < 2:
        raise ConfigError(f"tuneval compare needs at least two experiments, got {names}")
    check_same_examples(task.name, split, names, records)
    aligned = {names[0]: list(records[names[0]])}
    for name in names[1:]:
        aligned[name] = align_by_id(records[names[0]], records[name], f"{task.name} {split}")[1]
    if metrics:
        for name in names:
            missing = [key for key in metrics if not _is_number(finetuned[name].get(key))]
            if missing:
                raise DataError(f"{name}: {metrics_path(task.name, 'finetuned')} has no number for "
                                f"{split}.{missing[0]} (--metric)")
        keys = list(metrics)
    else:
        keys = [key for key in task.metrics.headline if all(_is_number(finetuned[name].get(key)) for name in names)]
    n = len(aligned[names[0]])
    statistic = {name: prediction_statistic(task, aligned[name], keys) for name in names}
    with_terms = set(keys)
    for name in names:
        recomputed = statistic[name](np.ones((1, n)))
        with_terms &= set(recomputed)
        check_recomputed({key: float(values[0]) for key, values in recomputed.items()}, finetuned[name],
                         f"{name}: {task.name} {split}", predictions_path(task.name, "finetuned", split),
                         metrics_path(task.name, "finetuned"),
                         "the two files are from different runs (commit both after one `dvc repro`)")
    sampled = resampling(task, aligned[names[0]], resamples)
    unit = sampled.unit if sampled.has_interval else ""
    note = "" if sampled.has_interval else f"no interval: {task.name}: {n} examples: {sampled.describe()}"
    paired: dict[tuple[str, str], dict[str, Paired]] = {}

    def interval(a: str, b: str, key: str) -> Interval | None:
        if not unit or key not in with_terms:
            return None
        if (a, b) not in paired:
            paired[(a, b)] = paired_intervals(statistic[a], statistic[b], n, sampled, seed=seed, level=level)
        return paired[(a, b)][key].delta_ci

    rows = []
    for key in keys:
        values = {name: float(finetuned[name][key]) for name in names}
        comparisons = [Comparison(a, b, values[b] - values[a], interval(a, b, key))
                       for a, b in pairs_for(names, values, pairs)]
        entries = [zeroshot.get(name) for name in names] if zeroshot else []
        rows.append(MetricRow(task=task.name, split=split, metric=key, scale=task.metrics.scale, n=n, unit=unit,
                              values=values, zeroshot=common_value(entries, key),
                              zeroshot_differs=_differs(entries, key), comparisons=comparisons,
                              note=note or ("" if key in with_terms else "no per-example terms: no interval"),
                              method=sampled.interval() if unit and key in with_terms else ""))
    return rows


def _differs(entries: Sequence[Mapping[str, Any] | None], key: str) -> bool:
    """Two experiments that have this zero-shot number disagree on it."""
    values = [float(entry[key]) for entry in entries if entry and _is_number(entry.get(key))]
    return any(not math.isclose(v, values[0], rel_tol=1e-12, abs_tol=1e-12) for v in values)


# ------------------------------------------------------------------------------------ experiments from git
def compare(repo: str | Path, experiments: Sequence[str], tasks: Sequence[str] | None = None,
            splits: Sequence[str] | None = None, metrics: Sequence[str] | None = None, pairs: str = "winner",
            resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL) -> tuple[list[Revision], list[MetricRow]]:
    """Resolve `experiments` in the git repository `repo` and compare them on every task and split they all have
    (or those asked for); see :func:`compare_split`."""
    if len(experiments) < 2:
        raise ConfigError(f"tuneval compare needs at least two experiments, got {list(experiments)}")
    if len(set(experiments)) != len(experiments):
        raise ConfigError(f"an experiment is named twice in {list(experiments)}")
    if resamples < 1:
        raise ConfigError(f"--resamples {resamples}: need at least 1")
    if pairs not in PAIRS:
        raise ConfigError(f"--pairs {pairs!r}; expected one of {', '.join(PAIRS)}")
    revs = [resolve(repo, name) for name in experiments]
    if tasks:
        chosen = [get_task(name) for name in tasks]
    else:
        chosen = [get_task(name) for name in TASK_NAMES
                  if all(has_file(repo, rev, metrics_path(name, "finetuned")) for rev in revs)]
        if not chosen:
            raise DataError(f"no task has {metrics_path('<task>', 'finetuned')} at every one of "
                            f"{', '.join(rev.describe() for rev in revs)}")
    rows: list[MetricRow] = []
    for task in chosen:
        finetuned = {rev.name: read_json_at(repo, rev, metrics_path(task.name, "finetuned")) for rev in revs}
        zeroshot = {rev.name: read_json_at(repo, rev, metrics_path(task.name, "zeroshot"))
                    if has_file(repo, rev, metrics_path(task.name, "zeroshot")) else {} for rev in revs}
        for split in _splits(task.name, revs, finetuned, splits):
            records = {rev.name: read_json_at(repo, rev, predictions_path(task.name, "finetuned", split))
                       for rev in revs}
            for rev in revs:
                if not isinstance(records[rev.name], list):
                    raise DataError(f"{rev.describe()}: {predictions_path(task.name, 'finetuned', split)} is not "
                                    "a JSON list of prediction records")
            rows += compare_split(task, split, {name: entry[split] for name, entry in finetuned.items()}, records,
                                  {name: entry.get(split) for name, entry in zeroshot.items()}, metrics, pairs,
                                  resamples, seed, level)
    return revs, rows


def _splits(task: str, revs: Sequence[Revision], finetuned: Mapping[str, Any],
            wanted: Sequence[str] | None) -> list[str]:
    """The splits every experiment evaluated (in the first's order), or `wanted`: DataError where one lacks it."""
    def splits_of(entry: Any) -> list[str]:
        return [key for key, value in entry.items() if key != RUN_KEY and isinstance(value, dict)]

    if wanted:
        for rev in revs:
            missing = [split for split in wanted if split not in splits_of(finetuned[rev.name])]
            if missing:
                raise DataError(f"{rev.describe()}: {metrics_path(task, 'finetuned')} has no split {missing[0]!r} "
                                f"(it has {splits_of(finetuned[rev.name])})")
        return list(wanted)
    return [split for split in splits_of(finetuned[revs[0].name])
            if all(split in splits_of(finetuned[rev.name]) for rev in revs)]


# ------------------------------------------------------------------------------------------------ output
def _fmt(value: float | None, decimals: int, sign: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.{decimals}f}" if sign else f"{value:.{decimals}f}"


def _interval(interval: Interval | None, decimals: int) -> str:
    return "[no interval]" if interval is None else \
        f"[{_fmt(interval.low, decimals, True)}, {_fmt(interval.high, decimals, True)}]"


def _table(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(row[i])) for row in [header, *body]) for i in range(len(header))]
    line = lambda row: "  ".join(  # noqa: E731
        str(cell).ljust(width) if i == 0 else str(cell).rjust(width)
        for i, (cell, width) in enumerate(zip(row, widths, strict=True)))
    return [line(header), *[line(row) for row in body]]


def format_text(revs: Sequence[Revision], rows: Sequence[MetricRow], pairs: str = "winner",
                resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL) -> str:
    """The plain-text report: per task and split, values and spread, then the paired comparisons."""
    from tuneval.tasks import SCALES

    lines = ["experiments: " + ", ".join(rev.describe() for rev in revs),
             f"sd: sample standard deviation across the {len(revs)} experiments (ddof=1); Δ = B − A on the same "
             f"examples, paired {level:.0%} interval (cluster bootstrap, {resamples:,} resamples, seed {seed}, "
             "with 30 or more clusters; cluster jackknife t on G−1 df with fewer: each split names its method); "
             "'> noise': the interval excludes 0"]
    groups: dict[tuple[str, str], list[MetricRow]] = {}
    for row in rows:
        groups.setdefault((row.task, row.split), []).append(row)
    names = [rev.name for rev in revs]
    for (task, split), group in groups.items():
        decimals = SCALES[group[0].scale]
        unit = group[0].unit
        method = next((row.method for row in group if row.method), "")
        resampled = f"resampling whole {unit}s" if unit and unit != "example" else \
            "resampling examples" if unit else group[0].note
        resampled += f"; {method}" if method else ""
        lines += ["", f"{task} [{split}]  n = {group[0].n:,}  ({resampled})"]
        lines += _table(["metric", "zero-shot", *names, "mean", "sd"],
                        [[labelled(row.metric), "differs" if row.zeroshot_differs else _fmt(row.zeroshot, decimals),
                          *[_fmt(row.values[name], decimals) for name in names],
                          _fmt(row.mean, decimals), _fmt(row.sd, decimals)] for row in group])
        title = {"winner": "winner vs runner-up", "all": "every pair", "first": f"each against {names[0]}"}[pairs]
        lines += ["", f"  paired comparison, {title}:"]
        body = [[labelled(row.metric), c.b, c.a, f"{_fmt(c.delta, decimals, True)} {_interval(c.interval, decimals)}",
                 "yes" if c.excludes_zero else "no"] for row in group for c in row.comparisons]
        lines += ["  " + line for line in _table(["metric", "B", "A", "Δ = B − A [CI]", "> noise"], body)]
        if pairs == "winner":
            head = group[0]
            verdict = head.winner_beats_runner_up()
            lines.append(f"  {labelled(head.metric)}: winner {head.winner} beats runner-up {head.runner_up} by "
                         f"more than noise: {'yes' if verdict else 'no'}")
    return "\n".join(lines)


def to_json(revs: Sequence[Revision], rows: Sequence[MetricRow], pairs: str = "winner",
            resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL) -> dict[str, Any]:
    """{experiments, bootstrap, tasks: {task: {split: {n, unit, metrics: {metric: {...}}}}}}: every printed
    number, unrounded."""
    out: dict[str, Any] = {
        "experiments": [{"name": r.name, "commit": r.commit, "ref": r.ref} for r in revs],
        "bootstrap": {"resamples": resamples, "seed": seed, "level": level, "pairs": pairs},
        "sd": "sample standard deviation across experiments, ddof=1",
        "tasks": {},
    }
    for row in rows:
        split = out["tasks"].setdefault(row.task, {}).setdefault(
            row.split, {"n": row.n, "unit": row.unit or None, "metrics": {}})
        if row.method:
            split.setdefault("interval", row.method)
        entry: dict[str, Any] = {"values": row.values, "mean": row.mean, "sd": row.sd, "zeroshot": row.zeroshot,
                                 "comparisons": [{"a": c.a, "b": c.b, "delta": c.delta,
                                                  "low": c.interval.low if c.interval else None,
                                                  "high": c.interval.high if c.interval else None,
                                                  "excludes_zero": c.excludes_zero} for c in row.comparisons]}
        if row.note:
            entry["note"] = row.note
        if row.metric in IN_SAMPLE_KEYS:
            entry["definition"] = IN_SAMPLE_NOTE
        entry["interval"] = row.method or "no interval"
        if pairs == "winner":
            entry |= {"winner": row.winner, "runner_up": row.runner_up,
                      "winner_beats_runner_up": bool(row.winner_beats_runner_up())}
        split["metrics"][row.metric] = entry
    return out


# --------------------------------------------------------------------------------------------------- CLI
def add_parser(sub: Any) -> None:
    """The `compare` subcommand on an argparse subparsers object."""
    cmp = sub.add_parser("compare", help="experiments side by side: seed spread and paired intervals between them")
    cmp.add_argument("experiments", nargs="+", metavar="EXP",
                     help="two or more DVC experiment names or git revisions (branch, tag, commit)")
    cmp.add_argument("--task", action="append", help="only this task (repeatable; default: every task all have)")
    cmp.add_argument("--split", action="append", help="only this split (repeatable; default: every split all have)")
    cmp.add_argument("--metric", action="append",
                     help="only this metric (repeatable; default: the task's headline metrics)")
    cmp.add_argument("--repo", default=".", help="the git repository holding the experiments (default: .)")
    cmp.add_argument("--pairs", default="winner", choices=PAIRS,
                     help="winner: each metric's winner vs runner-up (default); all: every pair; first: each vs "
                          "the first experiment")
    cmp.add_argument("--resamples", type=int, default=RESAMPLES)
    cmp.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    cmp.add_argument("--json", default=None, metavar="PATH", help="also write every number as JSON here")


def cmd_compare(args: argparse.Namespace) -> int:
    from tuneval.io import write_json

    revs, rows = compare(args.repo, args.experiments, args.task, args.split, args.metric, args.pairs,
                         args.resamples, args.seed)
    if not rows:
        raise DataError("nothing to compare: no headline metric is in every experiment's fine-tuned metrics")
    print(format_text(revs, rows, args.pairs, args.resamples, args.seed))
    if args.json:
        write_json(args.json, to_json(revs, rows, args.pairs, args.resamples, args.seed))
        print(f"wrote {args.json}")
    return 0
