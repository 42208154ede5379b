"""`tuneval curve`: a learning curve (or any one-parameter sweep) from DVC experiments, with both kinds of noise.

    tuneval curve --param data.train_examples.squad_v2 --task squad_v2 [--metric f1] [--split validation]
                  [--experiments all|NAME ...] [--all-commits] [--include-workspace] [--out report/curves/squad_v2]

The experiments (by default every DVC experiment whose baseline is HEAD; ``--all-commits``: of every baseline;
or the names / git revisions given) are grouped by the value of ``--param`` in their params.yaml, a dotted key
path to a number (``lr``, ``epochs``, ``train.lora.r``, ``data.train_examples.squad_v2``). For each value the
curve gives the number of runs (one per training seed), the mean of the metric over them, the seed spread (sample
sd, ddof=1, and min-max), and the examples' 95% interval: **the mean over the runs of each run's own interval
bounds** (low = mean of the runs' lows, high = mean of their highs). A run's own interval is
:func:`tuneval.scoring.stats.phase_interval`, the single-phase interval of the report and ``tuneval compare``: by
the method :func:`tuneval.scoring.stats.resampling` picks for the split (whole clusters where the task declares
them: the cluster bootstrap with >= 30 clusters, the delete-one-cluster jackknife t with fewer, none with < 5).
Every run's records are put in one order (sorted ids) first, so every run is resampled the same way (the same
bootstrap draws, or the same deleted clusters). The band says how far the value at that setting would move on
another sample of test examples, with the trained models held fixed; the seed spread says how far it moves
between training runs. The zero-shot score (with its interval) and the task's trivial baseline
(tasks/<task>.yaml ``baseline``) are reference lines.

One curve varies one thing, on one set of examples. It refuses experiments that

- differ in any params.yaml key but ``--param``, ``seed`` and ``data.draw_seed`` (the differing key is named;
  ``--ignore-param KEY`` accepts a key known not to change results),
- were scored with different run facts (metrics ``run`` entry: dtype, prompt, shots, chat template),
- scored different examples (the sorted example ids of their predictions, compared by digest), or
- have different zero-shot scores on the split (the same base model on the same examples must score the same;
  when it does not, something else differed: the base model, the few-shot pool, the scoring code, the machine's
  compute route).

It writes ``curve.md`` (the table), ``curve.png`` and ``curve.json`` (every point with its runs) into ``--out``.
Files are read from git at each experiment's commit, as ``tuneval compare`` reads them (see
:mod:`tuneval.report.compare`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from tuneval.errors import ConfigError, DataError
from tuneval.report.compare import (
    Revision,
    experiment_refs,
    metrics_path,
    predictions_path,
    read_json_at,
    resolve,
)
from tuneval.scoring.stats import (
    LEVEL,
    RESAMPLES,
    Interval,
    align_by_id,
    check_recomputed,
    phase_interval,
    prediction_statistic,
    resampling,
)
from tuneval.tasks import SCALES, Task, get_task

EXEMPT = ("seed", "data.draw_seed")  # the keys that may vary between the runs of one point: training seeds
RUN_FACTS = ("dtype", "prompt_sha", "num_fewshot", "chat_template")  # the metrics files' `run` facts that must agree
LOG_SPAN = 8.0  # the x axis is logarithmic when the largest value is at least this multiple of the smallest
POINT_INTERVAL = ("mean over the point's runs of each run's own interval (low = mean of the lows, high = mean of "
                  "the highs); every run resampled the same way (examples in sorted-id order)")
SPREAD = "sample standard deviation across the point's runs (ddof=1; null with one run), and their min and max"
SCHEMA_VERSION = 1
_MISSING = "<absent>"
_EXPONENT = re.compile(r"[-+]?[0-9]+(\.[0-9]*)?[eE][-+]?[0-9]+")


# --------------------------------------------------------------------------------------------- reading git
def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False)


def read_params_at(repo: Path, rev: Revision) -> dict[str, Any]:
    """params.yaml as committed at `rev` (a mapping); DataError naming the revision."""
    out = _git(repo, "cat-file", "blob", f"{rev.commit}:params.yaml")
    if out.returncode != 0:
        raise DataError(f"{rev.describe()}: params.yaml is not in git at that revision "
                        f"({out.stderr.decode().strip()})")
    try:
        params = yaml.safe_load(out.stdout)
    except yaml.YAMLError as err:
        raise DataError(f"{rev.describe()}: params.yaml is not valid YAML ({err})") from err
    if not isinstance(params, dict):
        raise DataError(f"{rev.describe()}: params.yaml is not a mapping")
    return params


def _yaml12(value: Any) -> Any:
    """A number YAML 1.1 (PyYAML) reads as a string, `2e-5` (no dot, as `dvc exp run -S lr=2e-5` writes it), as the
    float YAML 1.2 (DVC) and tuneval.config read; lists element by element; anything else as it is."""
    if isinstance(value, str) and _EXPONENT.fullmatch(value):
        return float(value)
    if isinstance(value, list):
        return [_yaml12(v) for v in value]
    return value


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"data": {"seed": 1}} -> {"data.seed": 1}; lists and scalars are leaves, an empty mapping is one too."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat |= flatten(value, f"{path}.")
        else:
            flat[path] = _yaml12(value)
    return flat


def _head(repo: Path) -> str:
    out = _git(repo, "rev-parse", "--verify", "--quiet", "HEAD")
    if out.returncode != 0:
        raise ConfigError(f"{repo}: HEAD is not a commit (an empty repository?)")
    return out.stdout.decode().strip()


def select(repo: str | Path, experiments: Sequence[str] | None = None, all_commits: bool = False,
           include_workspace: bool = False) -> list[Revision]:
    """The revisions on the curve: `experiments` resolved (names or git revisions), or with None / ["all"] every
    DVC experiment whose baseline is HEAD (every baseline with `all_commits`), plus HEAD itself with
    `include_workspace`. An experiment name used on several baselines is shown as name@<baseline[:7]>."""
    repo = Path(repo)
    if _git(repo, "rev-parse", "--git-dir").returncode != 0:
        raise ConfigError(f"--repo {repo}: not a git repository (run tuneval curve inside the project, or point "
                          "--repo at it)")
    head = _head(repo)
    if not experiments or list(experiments) == ["all"]:
        found = [(name, ref, commit, baseline) for name, entries in experiment_refs(repo).items()
                 for ref, commit, baseline in entries if all_commits or baseline == head]
        counts: dict[str, int] = {}
        for name, *_ in found:
            counts[name] = counts.get(name, 0) + 1
        revs = [Revision(name if counts[name] == 1 else f"{name}@{baseline[:7]}", commit, ref)
                for name, ref, commit, baseline in sorted(found, key=lambda f: (f[0], f[3]))]
        if not revs and not include_workspace:
            where = "in the repository" if all_commits else f"on HEAD ({head[:7]})"
            raise ConfigError(
                f"no DVC experiments {where} in {repo}: run a sweep first (dvc exp run --queue -S KEY=VALUE ...; "
                "dvc queue start -j 1), or see `dvc exp list --all-commits` and pass --all-commits or "
                "--experiments NAME ...")
    else:
        if "all" in experiments:
            raise ConfigError("--experiments all stands alone: give either `all` or experiment names")
        if len(set(experiments)) != len(experiments):
            raise ConfigError(f"an experiment is named twice in {list(experiments)}")
        revs = [resolve(repo, name) for name in experiments]
    if include_workspace and all(rev.commit != head for rev in revs):
        revs.append(Revision("HEAD", head))
    return revs


# ---------------------------------------------------------------------------------------------- the checks
def _shown(value: Any) -> str:
    return value if value == _MISSING else json.dumps(value)


def _groups(values: Mapping[str, Any]) -> dict[str, list[str]]:
    """name -> value  ==>  shown value -> names (in the names' order)."""
    groups: dict[str, list[str]] = {}
    for name, value in values.items():
        groups.setdefault(_shown(value), []).append(name)
    return groups


def _describe_groups(groups: Mapping[str, Sequence[str]], limit: int = 6) -> str:
    def names(members: Sequence[str]) -> str:
        return ", ".join(members[:limit]) + (f" and {len(members) - limit} more" if len(members) > limit else "")

    return "; ".join(f"{value} in {names(members)}" for value, members in groups.items())


def check_one_param_varies(param: str, params: Mapping[str, Mapping[str, Any]],
                           ignore: Sequence[str] = ()) -> None:
    """ConfigError naming every key (and which experiments hold which value) that differs between the experiments,
    other than `param`, EXEMPT and `ignore` (each a key or a prefix of keys)."""
    exempt = (param, *EXEMPT, *ignore)
    keys = sorted({key for flat in params.values() for key in flat})
    differing = []
    for key in keys:
        if any(key == e or key.startswith(f"{e}.") for e in exempt):
            continue
        groups = _groups({name: flat.get(key, _MISSING) for name, flat in params.items()})
        if len(groups) > 1:
            differing.append(f"{key}: {_describe_groups(groups)}")
    if differing:
        raise ConfigError(
            f"a curve varies one thing, but these experiments differ in more than --param {param} (and "
            f"{', '.join(EXEMPT)}, which the runs of one point may vary): " + " | ".join(differing[:8])
            + (f" | and {len(differing) - 8} more keys" if len(differing) > 8 else "")
            + ". Name the experiments of one sweep (--experiments NAME ...), or --ignore-param KEY for a key "
              "known not to change results")


def swept_value(param: str, rev: Revision, flat: Mapping[str, Any]) -> float | int:
    """The number at `param` in one experiment's params; ConfigError when it is absent or not a number."""
    if param not in flat:
        inside = sorted(key for key in flat if key.startswith(f"{param}."))
        hint = f" (it is a mapping: name a number inside it, e.g. {inside[0]})" if inside else ""
        raise ConfigError(f"{rev.describe()}: params.yaml has no number at --param {param}{hint}")
    value = flat[param]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        what = "empty (null: e.g. all examples)" if value is None else repr(value)
        raise ConfigError(f"{rev.describe()}: --param {param} is {what}, not a number; a curve needs a numeric "
                          "value at every point (set it explicitly in the sweep, e.g. -S "
                          f"'{param}=1000')")
    return value


def ids_digest(records: Sequence[Mapping[str, Any]]) -> str:
    """sha256 of the sorted example ids (as strings), one per line: which examples a prediction file scored."""
    ids = sorted(str(r["id"]) for r in records)
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


def check_same_examples(task: str, split: str, ids: Mapping[str, Mapping[str, set[str]]]) -> None:
    """`ids`: name -> phase -> example ids. DataError unless every experiment scored the same examples in both
    phases (naming the groups of experiments and some ids that differ)."""
    for name, phases in ids.items():
        if phases["zeroshot"] != phases["finetuned"]:
            raise DataError(f"{name}: {predictions_path(task, 'zeroshot', split)} and "
                            f"{predictions_path(task, 'finetuned', split)} hold different examples, so one "
                            f"phase is stale: rerun both phases there (dvc exp run score@{task} runs "
                            f"zeroshot_eval@{task} and eval@{task} where they are out of date)")
    digests = {name: hashlib.sha256("\n".join(sorted(p["finetuned"])).encode()).hexdigest()[:12]
               for name, p in ids.items()}
    groups: dict[str, list[str]] = {}
    for name, digest in digests.items():
        groups.setdefault(digest, []).append(name)
    if len(groups) > 1:
        (first, *_), (other, *_) = list(groups.values())[:2]
        a, b = ids[first]["finetuned"], ids[other]["finetuned"]
        described = "; ".join(f"{len(ids[members[0]]['finetuned']):,} examples (ids digest {digest}) in "
                              f"{', '.join(members)}" for digest, members in groups.items())
        raise DataError(
            f"these experiments did not score the same {task} {split} examples, so their scores are not points "
            f"of one curve: {described}. E.g. only in {first}: {sorted(a - b)[:3]}, only in {other}: "
            f"{sorted(b - a)[:3]}. Their data params differ (data.validation_examples, eval.limit, data.seed ...): "
            "rerun them on one set of examples")


def check_same_run_facts(task: str, facts: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> None:
    """`facts`: name -> phase -> the metrics file's `run` entry. DataError naming the fact and the experiments when
    any RUN_FACTS value differs between experiments or phases (e.g. one scored in bfloat16, another in float32)."""
    for key in RUN_FACTS:
        values = {f"{name} ({phase})": run.get(key, _MISSING) for name, phases in facts.items()
                  for phase, run in phases.items()}
        groups = _groups(values)
        if len(groups) > 1:
            raise DataError(
                f"these experiments' {task} metrics were scored with different {key} ({metrics_path(task, '*')} "
                f"run.{key}): {_describe_groups(groups)}. A different {key} moves scores by itself, so they are "
                f"not points of one curve; rerun them with one setting (pin model.dtype if it is `auto`)")


def check_same_zeroshot(task: str, split: str, entries: Mapping[str, Mapping[str, Any]]) -> None:
    """DataError naming the metric and the experiments when zero-shot scores on the split differ: the same base
    model on the same examples scores the same, so something else differed between them."""
    keys = sorted({key for entry in entries.values() for key, value in entry.items() if _is_number(value)})
    for key in keys:
        values = {name: entry.get(key, _MISSING) for name, entry in entries.items()}
        first = next(iter(values.values()))
        same = all(_is_number(v) and _is_number(first) and math.isclose(v, first, rel_tol=1e-12, abs_tol=1e-12)
                   for v in values.values())
        if not same:
            raise DataError(
                f"these experiments' zero-shot {task} {split} scores differ ({metrics_path(task, 'zeroshot')} "
                f"{split}.{key}: {_describe_groups(_groups(values))}): the base model scored differently, so "
                "something besides fine-tuning differs between them (the base model, the few-shot pool, the "
                "scoring code, or the machine's compute route: model.dtype auto, another device). They are not "
                "points of one curve: find what differs (the experiments' commits, dvc exp show) and rerun them "
                "alike")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# ---------------------------------------------------------------------------------------------- the numbers
@dataclass(frozen=True)
class Run:
    """One experiment on the curve: its revision, swept value, seeds, metric value, its own examples' interval and
    the trivial baseline's value on its examples (None: the task has no baseline)."""

    rev: Revision
    x: float | int
    seed: Any
    draw_seed: Any
    value: float
    interval: Interval | None
    baseline: float | None


@dataclass(frozen=True)
class Point:
    """The runs of one swept value."""

    x: float | int
    runs: list[Run]

    @property
    def values(self) -> list[float]:
        return [run.value for run in self.runs]

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def sd(self) -> float | None:
        return float(np.std(self.values, ddof=1)) if len(self.runs) > 1 else None

    @property
    def min(self) -> float:
        return float(min(self.values))

    @property
    def max(self) -> float:
        return float(max(self.values))

    @property
    def interval(self) -> Interval | None:
        """The mean of the runs' own interval bounds; None when a run has none."""
        if any(run.interval is None for run in self.runs):
            return None
        return Interval(float(np.mean([run.interval.low for run in self.runs])),
                        float(np.mean([run.interval.high for run in self.runs])))


@dataclass(frozen=True)
class Curve:
    task: str
    split: str
    metric: str
    scale: str
    param: str
    n: int
    digest: str  # ids_digest of the scored examples
    run_facts: dict[str, Any]
    resampling: str  # stats.Resampling.describe(): what is resampled
    unit: str  # the resampling unit ("example", "article"; "none": too few clusters for any interval)
    method: str  # stats.Resampling.interval(): "cluster bootstrap, 1000 resamples", "cluster jackknife t, ..."
    zeroshot: float
    zeroshot_interval: Interval | None
    baseline_name: str
    points: list[Point]
    resamples: int = RESAMPLES
    seed: int = 0
    level: float = LEVEL
    notes: list[str] = field(default_factory=list)

    @property
    def runs(self) -> list[Run]:
        return [run for point in self.points for run in point.runs]

    @property
    def baseline(self) -> float | None:
        """The trivial baseline, averaged over the runs (it can differ between runs: a majority class is the
        training draw's); None for a task without one."""
        values = [run.baseline for run in self.runs if run.baseline is not None]
        return float(np.mean(values)) if values else None

    @property
    def baseline_range(self) -> tuple[float, float] | None:
        values = [run.baseline for run in self.runs if run.baseline is not None]
        return (float(min(values)), float(max(values))) if values else None

    @property
    def log_x(self) -> bool:
        xs = [point.x for point in self.points]
        return len(xs) > 1 and min(xs) > 0 and max(xs) / min(xs) >= LOG_SPAN


def _check_value(task: Task, split: str, name: str, phase: str, records: Sequence[dict[str, Any]], metric: str,
                 recorded: float) -> None:
    """The predictions must reproduce the metrics file's value, or the interval is of something else."""
    values = prediction_statistic(task, records, [metric])(np.ones((1, len(records))))
    check_recomputed({key: float(v[0]) for key, v in values.items()}, {metric: recorded},
                     f"{name}: {task.name} {split}", predictions_path(task.name, phase, split),
                     metrics_path(task.name, phase),
                     "the two files are from different runs (commit both after one `dvc repro`)")


def _number_at(entry: Mapping[str, Any], name: str, task: str, phase: str, split: str, metric: str) -> float:
    if split not in entry or not isinstance(entry[split], dict):
        splits = [key for key, value in entry.items() if key != "run" and isinstance(value, dict)]
        raise DataError(f"{name}: {metrics_path(task, phase)} has no split {split!r} (it has {splits}; --split)")
    value = entry[split].get(metric)
    if not _is_number(value):
        raise DataError(f"{name}: {metrics_path(task, phase)} has no number for {split}.{metric} (--metric; the "
                        f"task's headline metrics: {', '.join(get_task(task).metrics.headline)})")
    return float(value)


def build_curve(repo: str | Path, param: str, task_name: str, metric: str | None = None, split: str = "validation",
                experiments: Sequence[str] | None = None, all_commits: bool = False,
                include_workspace: bool = False, ignore: Sequence[str] = (), resamples: int = RESAMPLES,
                seed: int = 0, level: float = LEVEL) -> Curve:
    """Read every selected experiment (see :func:`select`) from git, check that they belong on one curve, and
    compute its points."""
    from tuneval.report.summary import trivial_baseline

    if resamples < 1:
        raise ConfigError(f"--resamples {resamples}: need at least 1")
    repo = Path(repo)
    task = get_task(task_name)
    metric = metric or task.metrics.headline[0]
    revs = select(repo, experiments, all_commits, include_workspace)
    names = [rev.name for rev in revs]

    flats = {rev.name: flatten(read_params_at(repo, rev)) for rev in revs}
    xs = {rev.name: swept_value(param, rev, flats[rev.name]) for rev in revs}
    check_one_param_varies(param, flats, ignore)

    metrics = {rev.name: {phase: read_json_at(repo, rev, metrics_path(task.name, phase))
                          for phase in ("zeroshot", "finetuned")} for rev in revs}
    check_same_run_facts(task.name, {name: {phase: entry.get("run") or {} for phase, entry in phases.items()}
                                     for name, phases in metrics.items()})
    values = {name: {phase: _number_at(metrics[name][phase], name, task.name, phase, split, metric)
                     for phase in ("zeroshot", "finetuned")} for name in names}

    records: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for rev in revs:
        records[rev.name] = {}
        for phase in ("zeroshot", "finetuned"):
            data = read_json_at(repo, rev, predictions_path(task.name, phase, split))
            if not isinstance(data, list) or not all(isinstance(r, dict) and "id" in r for r in data):
                raise DataError(f"{rev.describe()}: {predictions_path(task.name, phase, split)} is not a JSON list "
                                "of prediction records with ids")
            records[rev.name][phase] = data
    check_same_examples(task.name, split, {name: {phase: {str(r["id"]) for r in recs}
                                                  for phase, recs in phases.items()}
                                           for name, phases in records.items()})
    check_same_zeroshot(task.name, split, {name: metrics[name]["zeroshot"][split] for name in names})

    # One order of examples for every run (sorted ids), so the same bootstrap draws resample the same examples.
    reference = sorted(records[names[0]]["zeroshot"], key=lambda r: str(r["id"]))
    aligned = {name: {phase: align_by_id(reference, records[name][phase], f"{name} {task.name} {split}")[1]
                      for phase in ("zeroshot", "finetuned")} for name in names}
    unit = resampling(task, reference, resamples)
    notes = [] if unit.has_interval else [f"no examples' interval: {unit.describe()}"]
    for name in names:
        for phase in ("zeroshot", "finetuned"):
            _check_value(task, split, name, phase, aligned[name][phase], metric, values[name][phase])
    zeroshot_interval = phase_interval(task, aligned[names[0]]["zeroshot"], metric, resamples, seed, level)
    if unit.has_interval and zeroshot_interval is None:
        notes.append(f"{metric}: no examples' interval (no per-example terms, or undefined on a replicate)")

    baseline_name = "none"
    runs = []
    for rev in revs:
        finetuned = aligned[rev.name]["finetuned"]
        baseline = None
        if task.baseline:
            counts = {}
            if task.baseline == "majority_class":
                counts = read_json_at(repo, rev, predictions_path(task.name, "finetuned", "run")).get(
                    "train_label_counts", {})
            baseline_records, baseline_name = trivial_baseline(task, finetuned, counts)
            computed = prediction_statistic(task, baseline_records, [metric])(np.ones((1, len(finetuned))))
            baseline = float(computed[metric][0]) if metric in computed else None
        flat = flats[rev.name]
        runs.append(Run(rev=rev, x=xs[rev.name], seed=flat.get("seed"), draw_seed=flat.get("data.draw_seed"),
                        value=values[rev.name]["finetuned"],
                        interval=phase_interval(task, finetuned, metric, resamples, seed, level),
                        baseline=baseline))
    if task.baseline == "majority_class" and len({run.baseline for run in runs}) > 1:
        baseline_name = "majority class of each run's training draw (it differs between runs)"
    points = [Point(x, sorted((run for run in runs if run.x == x), key=lambda run: run.rev.name))
              for x in sorted({run.x for run in runs})]
    for point in points:
        seeds: dict[str, list[str]] = {}
        for run in point.runs:
            seeds.setdefault(f"seed {run.seed}, data.draw_seed {run.draw_seed}", []).append(run.rev.name)
        notes += [f"{param} = {_x(point.x)}: {', '.join(members)} have the same {key} (reruns of one run, not "
                  "independent seeds: they narrow the sd)" for key, members in seeds.items() if len(members) > 1]
    first_run = metrics[names[0]]["finetuned"].get("run") or {}
    return Curve(task=task.name, split=split, metric=metric, scale=task.metrics.scale, param=param,
                 n=len(reference), digest=ids_digest(reference), run_facts={k: first_run.get(k) for k in RUN_FACTS},
                 resampling=unit.describe(), unit=unit.unit, method=unit.interval(),
                 zeroshot=values[names[0]]["zeroshot"],
                 zeroshot_interval=zeroshot_interval, baseline_name=baseline_name, points=points,
                 resamples=resamples, seed=seed, level=level, notes=notes)


# ------------------------------------------------------------------------------------------------ output
def _x(value: float | int) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _num(value: float | None, decimals: int, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.{decimals}f}" if signed else f"{value:.{decimals}f}"


def _ci(interval: Interval | None, decimals: int) -> str:
    return "–" if interval is None else f"[{interval.low:.{decimals}f}, {interval.high:.{decimals}f}]"


def to_markdown(curve: Curve) -> str:
    d = SCALES[curve.scale]
    baseline = "none" if curve.baseline is None else _num(curve.baseline, d)
    if curve.baseline_range and curve.baseline_range[0] != curve.baseline_range[1]:
        baseline += f" (mean; {_num(curve.baseline_range[0], d)}–{_num(curve.baseline_range[1], d)} across runs)"
    lines = [
        f"# Curve: {curve.task} {curve.metric} ({curve.split}) vs `{curve.param}`",
        "",
        f"- examples: {curve.n:,} scored by every run (ids sha256 `{curve.digest[:12]}`), resampling "
        f"{curve.resampling}; run: " + ", ".join(f"{k} {v}" for k, v in curve.run_facts.items()),
        f"- zero-shot: {_num(curve.zeroshot, d)} {_ci(curve.zeroshot_interval, d)}",
        f"- trivial baseline: {baseline} ({curve.baseline_name})",
        f"- sd: sample standard deviation across the runs of a value (training seeds; ddof=1); examples' "
        f"{curve.level:.0%} CI: the mean of the runs' own interval bounds ({curve.method}"
        f"{f', seed {curve.seed}' if 'bootstrap' in curve.method else ''}; every run resampled the same way)",
        *[f"- note: {note}" for note in curve.notes],
        "",
        f"| {curve.param} | runs | mean | sd | min–max | examples' {curve.level:.0%} CI | Δ vs zero-shot | "
        "experiments |",
        "|---:|---:|---:|---:|---:|---:|---:|:---|",
    ]
    for point in curve.points:
        exps = ", ".join(f"{run.rev.name} ({_num(run.value, d)})" for run in point.runs)
        lines.append(f"| {_x(point.x)} | {len(point.runs)} | {_num(point.mean, d)} | {_num(point.sd, d)} | "
                     f"{_num(point.min, d)}–{_num(point.max, d)} | {_ci(point.interval, d)} | "
                     f"{_num(point.mean - curve.zeroshot, d, True)} | {exps} |")
    return "\n".join(lines) + "\n"


def _interval_json(interval: Interval | None) -> dict[str, float | None]:
    return {"low": interval.low if interval else None, "high": interval.high if interval else None}


def to_json(curve: Curve) -> dict[str, Any]:
    """curve.json: every number, unrounded (the schema is in docs/protocol.md, "Learning curves")."""
    return {
        "version": SCHEMA_VERSION,
        "task": curve.task,
        "split": curve.split,
        "metric": curve.metric,
        "scale": curve.scale,
        "param": curve.param,
        "examples": {"n": curve.n, "ids_sha256": curve.digest, "resampling": curve.resampling,
                     "unit": curve.unit},
        "run": curve.run_facts,
        "interval": {"run": curve.method, "point": POINT_INTERVAL, "level": curve.level,
                     "resamples": curve.resamples, "seed": curve.seed},
        "spread": SPREAD,
        "log_x": curve.log_x,
        "notes": curve.notes,
        "reference": {
            "zeroshot": {"value": curve.zeroshot, **_interval_json(curve.zeroshot_interval)},
            "baseline": {"name": curve.baseline_name, "value": curve.baseline,
                         "min": curve.baseline_range[0] if curve.baseline_range else None,
                         "max": curve.baseline_range[1] if curve.baseline_range else None},
        },
        "points": [
            {"value": point.x, "runs": len(point.runs), "mean": point.mean, "sd": point.sd, "min": point.min,
             "max": point.max, **_interval_json(point.interval), "delta_zeroshot": point.mean - curve.zeroshot,
             "experiments": [{"name": run.rev.name, "commit": run.rev.commit, "ref": run.rev.ref,
                              "seed": run.seed, "draw_seed": run.draw_seed, "value": run.value,
                              **_interval_json(run.interval), "baseline": run.baseline} for run in point.runs]}
            for point in curve.points
        ],
    }


def plot(curve: Curve, png_path: Path) -> None:
    """curve.png: mean ± sd (seed spread) with the runs as dots, the examples' interval as a band, zero-shot and
    the trivial baseline as horizontal lines; log x when the values span LOG_SPAN x or more."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tuneval.io import atomic_path

    xs = [float(point.x) for point in curve.points]
    means = [point.mean for point in curve.points]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    label = f"examples' {curve.level:.0%} CI (mean of runs')"
    with_ci = [point for point in curve.points if point.interval is not None]
    if len(with_ci) == len(xs) > 1:
        ax.fill_between(xs, [p.interval.low for p in with_ci], [p.interval.high for p in with_ci],
                        color="#2f6fb0", alpha=0.15, linewidth=0, label=label)
    elif with_ci:  # one point, or some without an interval: a whisker at each point that has one
        ax.vlines([float(p.x) for p in with_ci], [p.interval.low for p in with_ci],
                  [p.interval.high for p in with_ci], color="#2f6fb0", alpha=0.3, linewidth=6, label=label)
    ax.errorbar(xs, means, yerr=[p.sd or 0.0 for p in curve.points], color="#2f6fb0", marker="o", capsize=4,
                label="fine-tuned: mean ± sd over seeds")
    run_x = [float(run.x) for run in curve.runs]
    ax.scatter(run_x, [run.value for run in curve.runs], s=12, color="#2f6fb0", alpha=0.5, zorder=3,
               label="runs")
    ax.axhline(curve.zeroshot, color="#7a7a7a", linestyle="--", linewidth=1,
               label="zero-shot" + ("" if curve.zeroshot_interval is None else f" (band: its {curve.level:.0%} CI)"))
    if curve.zeroshot_interval is not None:
        ax.axhspan(curve.zeroshot_interval.low, curve.zeroshot_interval.high, color="#7a7a7a", alpha=0.08)
    if curve.baseline is not None:
        ax.axhline(curve.baseline, color="#b04a2f", linestyle=":", linewidth=1.2,
                   label=f"trivial baseline ({curve.baseline_name.split(' (')[0]})")
    if curve.log_x:
        ax.set_xscale("log")
    ax.set_xticks(xs, [_x(p.x) for p in curve.points])
    ax.minorticks_off()
    ax.set_xlabel(curve.param)
    ax.set_ylabel(f"{curve.metric} ({curve.scale})")
    ax.set_title(f"{curve.task} {curve.split} (n={curve.n:,}): {curve.metric} vs {curve.param}", fontsize=10)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)


def write_curve(curve: Curve, out_dir: str | Path) -> list[Path]:
    """curve.md, curve.png and curve.json in `out_dir`; their paths."""
    from tuneval.io import write_json, write_text

    out = Path(out_dir)
    files = [out / "curve.md", out / "curve.png", out / "curve.json"]
    write_text(files[0], to_markdown(curve))
    plot(curve, files[1])
    write_json(files[2], to_json(curve))
    return files


# --------------------------------------------------------------------------------------------------- CLI
def add_parser(sub: Any) -> None:
    """The `curve` subcommand on an argparse subparsers object."""
    cur = sub.add_parser("curve", help="a learning curve from DVC experiments: metric vs one param, with noise")
    cur.add_argument("--param", required=True,
                     help="the swept params.yaml key, dotted (data.train_examples.squad_v2, lr, train.lora.r)")
    cur.add_argument("--task", required=True, help="sst2 | squad_v2")
    cur.add_argument("--metric", default=None, help="default: the task's first headline metric")
    cur.add_argument("--split", default="validation")
    cur.add_argument("--experiments", nargs="+", default=["all"], metavar="NAME",
                     help="all (default: every experiment whose baseline is HEAD) or experiment names / git revisions")
    cur.add_argument("--all-commits", action="store_true", help="with `all`: experiments of every baseline")
    cur.add_argument("--include-workspace", action="store_true",
                     help="also put the HEAD commit's own results on the curve")
    cur.add_argument("--ignore-param", action="append", default=[], metavar="KEY",
                     help="a params key (or prefix) that may differ between experiments (repeatable)")
    cur.add_argument("--out", default=None, help="output directory (default: report/curves/<task>)")
    cur.add_argument("--repo", default=".", help="the git repository holding the experiments (default: .)")
    cur.add_argument("--resamples", type=int, default=RESAMPLES)
    cur.add_argument("--seed", type=int, default=0, help="bootstrap seed")


def cmd_curve(args: argparse.Namespace) -> int:
    curve = build_curve(args.repo, args.param, args.task, args.metric, args.split, args.experiments,
                        args.all_commits, args.include_workspace, args.ignore_param, args.resamples, args.seed)
    files = write_curve(curve, args.out or Path("report") / "curves" / args.task)
    print(to_markdown(curve))
    print("wrote " + ", ".join(str(path) for path in files))
    return 0
