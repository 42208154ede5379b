"""`tuneval agree`: does a rerun on another compute route agree with the committed predictions within noise?

    tuneval agree [--rev REV] [--task T] [--phase P] [--metric M] [--repo DIR] [--resamples N] [--seed S]
                  [--json [PATH]]

The same commit reproduces its predictions byte for byte on the same kind of machine; on another (a CPU with or
without AVX512-BF16, a GPU: tuneval.route) a few borderline predictions move. After such a rerun this compares the
working tree's predictions (predictions/<task>/<phase>/<split>.json) with the ones committed at REV (default HEAD;
any git revision or DVC experiment name, read with git as `tuneval compare` does) for every task, phase and split
found on either side. For each it prints both runs' routes (run.json's "route"; "unrecorded" before routes were
recorded), how many predictions differ (SST-2: the predicted label; SQuAD v2: the answer text, abstentions
counted apart), and per headline metric the committed value, the local one, Δ = local − committed and the paired
95% interval of Δ, by the method the report uses (tuneval.scoring.stats.paired_intervals: both runs recomputed on
the same bootstrap resamples of examples, or of whole articles where the task clusters its examples; the
delete-one-article jackknife t where there are too few articles for a bootstrap). "inside: yes" means the interval
holds 0: the two runs agree within the noise of which examples were scored; "NO" means the route shifts that
metric by more than that noise.

Values are recomputed from the predictions with the metric functions the metrics files come from. Exit status 0
once everything was compared (whatever the verdicts); 1 with an error naming the file when one side lacks a
predictions file or the two scored different example ids.

`readme_sync_blocker` is scripts/repro.sh's check before it copies the report's results into README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tuneval.config import EVAL_SPLITS, PHASES
from tuneval.errors import ConfigError, DataError
from tuneval.report.compare import Revision, has_file, read_json_at, resolve
from tuneval.route import recorded, route_difference, route_line
from tuneval.scoring import stats
from tuneval.scoring.stats import LEVEL, RESAMPLES, Interval, prediction_statistic
from tuneval.tasks import SCALES, TASK_NAMES, Task, get_task

LOCAL = "working tree"
NAMES = ("committed", "local")  # route_difference's names for the two sides
SHOWN_IDS = 20  # differing example ids kept in the JSON output
TOLERANCE = 1e-12  # an interval end this close to 0 counts as 0 (the same metric summed in another order)


def predictions_path(task: str, phase: str, split: str) -> str:
    return f"predictions/{task}/{phase}/{split}.json"


def run_path(task: str, phase: str) -> str:
    return f"predictions/{task}/{phase}/run.json"


# ------------------------------------------------------------------------------------------------ results
@dataclass(frozen=True)
class MetricAgreement:
    """One metric: committed and local values on the same examples, Δ = local − committed, its paired interval."""

    metric: str
    committed: float
    local: float
    interval: Interval | None

    @property
    def delta(self) -> float:
        return self.local - self.committed

    @property
    def inside(self) -> bool | None:
        """True when the paired interval of Δ holds 0 (the runs agree within noise); None without an interval."""
        if self.interval is None:
            return None
        return self.interval.low <= TOLERANCE and self.interval.high >= -TOLERANCE


@dataclass
class SplitAgreement:
    """One task, phase and split: routes, differing predictions and the metrics."""

    task: str
    phase: str
    split: str
    n: int
    scale: str
    resampled: str  # the unit and the interval method ("whole articles (20 articles), cluster jackknife t, ...")
    committed_route: dict[str, Any] | None
    local_route: dict[str, Any] | None
    differing_ids: list[str]
    abstentions_changed: int | None  # generate tasks: predictions that went from answering to abstaining or back
    metrics: list[MetricAgreement] = field(default_factory=list)

    @property
    def differing(self) -> int:
        return len(self.differing_ids)

    @property
    def route_difference(self) -> str | None:
        return route_difference(self.committed_route, self.local_route, names=NAMES)

    @property
    def routes_known(self) -> bool:
        return recorded(self.committed_route) and recorded(self.local_route)


# ------------------------------------------------------------------------------------------------ reading
def _committed_files(repo: Path, rev: Revision, task: str, phase: str) -> list[str]:
    """File names (e.g. validation.json, run.json) under predictions/<task>/<phase>/ at `rev`."""
    out = subprocess.run(["git", "-C", str(repo), "ls-tree", "--name-only", rev.commit, "--",
                          f"predictions/{task}/{phase}/"], capture_output=True, text=True, check=False)
    return [Path(line).name for line in out.stdout.splitlines() if line.strip()]


def _splits(names: Sequence[str]) -> list[str]:
    stems = {Path(name).stem for name in names if name.endswith(".json") and name != "run.json"}
    return [s for s in EVAL_SPLITS if s in stems] + sorted(stems - set(EVAL_SPLITS))


def _read_local(repo: Path, path: str) -> Any:
    try:
        return json.loads((repo / path).read_text(encoding="utf-8-sig"))
    except OSError as err:
        raise DataError(f"{LOCAL} {repo / path}: cannot read it ({err})") from err
    except ValueError as err:
        raise DataError(f"{LOCAL} {repo / path}: malformed JSON ({err})") from err


def _route_of(run: Any) -> dict[str, Any] | None:
    route = run.get("route") if isinstance(run, dict) else None
    return route if recorded(route) else None


def _records(records: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(records, list) or not all(isinstance(r, dict) and "id" in r for r in records):
        raise DataError(f"{where} is not a JSON list of prediction records with an id each")
    return records


def check_same_ids(committed: Sequence[dict[str, Any]], local: Sequence[dict[str, Any]], path: str,
                   rev: Revision) -> None:
    """DataError naming `path` unless both sides scored the same example ids, once each."""
    for side, records in ((rev.describe(), committed), (LOCAL, local)):
        ids = [str(r["id"]) for r in records]
        if len(set(ids)) != len(ids):
            dupes = sorted(i for i, count in Counter(ids).items() if count > 1)[:5]
            raise DataError(f"{path} ({side}) scores some examples more than once ({dupes}); rerun its evaluation")
    first, second = {str(r["id"]) for r in committed}, {str(r["id"]) for r in local}
    if first != second:
        raise DataError(
            f"{path}: the {LOCAL} and {rev.describe()} scored different examples ({len(local)} vs {len(committed)} "
            f"records; only committed: {sorted(first - second)[:5]}, only local: {sorted(second - first)[:5]}), so "
            "they cannot be compared example by example: rerun with the committed params.yaml (same data params, "
            "eval.limit and seeds)")


def _answer(task: Task, record: dict[str, Any]) -> str:
    """What counts as the prediction: the label (multiple choice) or the answer text ("" = abstention)."""
    return str(record["predicted"] if task.kind == "multiple_choice" else record["prediction"])


# -------------------------------------------------------------------------------------------- comparing
def compare_split(task: Task, phase: str, split: str, committed: Sequence[dict[str, Any]],
                  local: Sequence[dict[str, Any]], rev: Revision, routes: tuple[Any, Any],
                  metrics: Sequence[str] | None = None, resamples: int = RESAMPLES, seed: int = 0,
                  level: float = LEVEL) -> SplitAgreement:
    """Both runs of one task, phase and split: differing predictions, and each metric with its paired interval."""
    path = predictions_path(task.name, phase, split)
    check_same_ids(committed, local, path, rev)
    by_id = {str(r["id"]): r for r in local}
    local = [by_id[str(r["id"])] for r in committed]  # aligned: the committed order
    pairs = [(_answer(task, a), _answer(task, b)) for a, b in zip(committed, local, strict=True)]
    differing = [str(r["id"]) for r, (a, b) in zip(committed, pairs, strict=True) if a != b]
    abstentions = None if task.kind == "multiple_choice" else sum((a == "") != (b == "") for a, b in pairs)
    headline = list(task.metrics.headline)  # shown in the task's order; other asked-for keys after them
    keys = [k for k in headline if k in metrics] + [k for k in metrics if k not in headline] if metrics else headline
    first, second = prediction_statistic(task, committed, keys), prediction_statistic(task, local, keys)
    n = len(committed)
    intervals, resampled = _paired_intervals(task, committed, first, second, resamples, seed, level)
    full_a, full_b = first(np.ones((1, n))), second(np.ones((1, n)))
    rows = [MetricAgreement(key, float(full_a[key][0]), float(full_b[key][0]), intervals.get(key))
            for key in keys if key in full_a and key in full_b]
    return SplitAgreement(task=task.name, phase=phase, split=split, n=n, scale=task.metrics.scale,
                          resampled=resampled, committed_route=routes[0], local_route=routes[1],
                          differing_ids=differing, abstentions_changed=abstentions, metrics=rows)


def _paired_intervals(task: Task, records: Sequence[dict[str, Any]], first: stats.Statistic,
                      second: stats.Statistic, resamples: int, seed: int,
                      level: float) -> tuple[dict[str, Interval | None], str]:
    """({metric: the paired interval of Δ}, what was resampled and how), by the method the report and `tuneval
    compare` use (stats.paired_intervals: the cluster bootstrap with enough clusters, the delete-one-cluster
    jackknife t with fewer, none with very few); a plain paired bootstrap where stats predates it."""
    n = len(records)
    if hasattr(stats, "paired_intervals"):
        unit = stats.resampling(task, records, resamples)
        paired = stats.paired_intervals(first, second, n, unit, seed, level)
        how = unit.describe() if not unit.has_interval else f"{unit.describe()}, {unit.interval()}"
        return {key: p.delta_ci for key, p in paired.items()}, how
    unit = stats.resampling(task, records)
    if not unit.honest:
        return {}, unit.describe()
    extra = {"clusters": unit.labels} if unit.labels is not None else {}
    paired = stats.paired_bootstrap(first, second, n, resamples=resamples, seed=seed, level=level, **extra)
    return {key: p.delta_ci for key, p in paired.items()}, f"{unit.describe()}, bootstrap, {resamples} resamples"


def agree(repo: str | Path = ".", rev: str = "HEAD", tasks: Sequence[str] | None = None,
          phases: Sequence[str] | None = None, metrics: Sequence[str] | None = None, resamples: int = RESAMPLES,
          seed: int = 0, level: float = LEVEL) -> tuple[Revision, list[SplitAgreement]]:
    """The working tree's predictions against those committed at `rev`, for every task and phase (or those asked
    for) and every split either side has. DataError naming the file where one side lacks it."""
    if resamples < 1:
        raise ConfigError(f"--resamples {resamples}: need at least 1")
    for phase in phases or ():
        if phase not in PHASES:
            raise ConfigError(f"--phase {phase!r}; expected one of {', '.join(PHASES)}")
    repo = Path(repo)
    revision = resolve(repo, rev)
    results: list[SplitAgreement] = []
    for task in [get_task(name) for name in (tasks or TASK_NAMES)]:
        for phase in phases or PHASES:
            in_git = _committed_files(repo, revision, task.name, phase)
            local_dir = repo / "predictions" / task.name / phase
            here = [p.name for p in local_dir.glob("*.json")] if local_dir.is_dir() else []
            splits = _splits([*in_git, *here])
            if not splits:
                continue
            routes = (_route_of(read_json_at(repo, revision, run_path(task.name, phase)))
                      if has_file(repo, revision, run_path(task.name, phase)) else None,
                      _route_of(_read_local(repo, run_path(task.name, phase)))
                      if (repo / run_path(task.name, phase)).is_file() else None)
            for split in splits:
                path = predictions_path(task.name, phase, split)
                if f"{split}.json" not in in_git:
                    raise DataError(f"{path} is in the {LOCAL} but not committed at {revision.describe()}: nothing "
                                    "to compare it with (commit the reference predictions, or pick --rev/--task/"
                                    "--phase)")
                if f"{split}.json" not in here:
                    raise DataError(f"{path} is committed at {revision.describe()} but missing from the {LOCAL} "
                                    f"({repo / path}): rerun that evaluation (dvc repro), or pick --task/--phase")
                committed = _records(read_json_at(repo, revision, path), f"{revision.describe()}: {path}")
                local = _records(_read_local(repo, path), f"{LOCAL} {repo / path}")
                results.append(compare_split(task, phase, split, committed, local, revision, routes, metrics,
                                             resamples, seed, level))
    if not results:
        raise DataError(f"no predictions to compare in {repo.resolve()}: neither the {LOCAL} nor "
                        f"{revision.describe()} has predictions/<task>/<phase>/<split>.json"
                        + (f" for task {', '.join(tasks)}" if tasks else ""))
    if metrics:
        found = {m.metric for r in results for m in r.metrics}
        unknown = [m for m in metrics if m not in found]
        if unknown:
            raise ConfigError(f"--metric {unknown[0]}: no compared task defines it (headline metrics: "
                              + "; ".join(f"{t}: {', '.join(get_task(t).metrics.headline)}"
                                          for t in dict.fromkeys(r.task for r in results)) + ")")
    return revision, results


# ------------------------------------------------------------------------------------------------ output
def _fmt(value: float | None, decimals: int, sign: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:+.{decimals}f}" if sign else f"{value:.{decimals}f}"


def _table(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(row[i])) for row in [header, *body]) for i in range(len(header))]
    return ["  ".join(str(cell).ljust(w) if i == 0 else str(cell).rjust(w)
                      for i, (cell, w) in enumerate(zip(row, widths, strict=True))) for row in [header, *body]]


def _verdict(inside: bool | None) -> str:
    return "no interval" if inside is None else "yes" if inside else "NO"


def differing_line(result: SplitAgreement) -> str:
    what = "predicted labels" if result.abstentions_changed is None else "answers"
    share = result.differing / result.n if result.n else 0.0
    line = f"{result.differing:,} of {result.n:,} {what} differ ({share:.2%})"
    if result.abstentions_changed:
        line += f", {result.abstentions_changed:,} of them between answering and abstaining"
    return line


def format_text(repo: str | Path, rev: Revision, results: Sequence[SplitAgreement], resamples: int = RESAMPLES,
                seed: int = 0, level: float = LEVEL) -> str:
    lines = [f"tuneval agree: the {LOCAL} of {Path(repo).resolve()} against {rev.describe()}",
             f"Δ = local − committed on the same examples, with its paired {level:.0%} interval (the report's "
             f"method, below per split; bootstrap seed {seed}); inside: the interval holds 0, the two runs agree "
             "within the noise of which examples were scored"]
    for r in results:
        decimals = SCALES[r.scale]
        lines += ["", f"{r.task} {r.phase} [{r.split}]  n = {r.n:,}  ({r.resampled})",
                  f"  committed route: {route_line(r.committed_route)}",
                  f"  local route:     {route_line(r.local_route)}"]
        if r.routes_known:
            lines.append(f"  routes differ: {r.route_difference}" if r.route_difference else "  routes: the same")
        else:
            which = "both routes are" if not (recorded(r.committed_route) or recorded(r.local_route)) else \
                f"the {NAMES[0] if not recorded(r.committed_route) else NAMES[1]} route is"
            lines.append(f"  routes: cannot be compared ({which} unrecorded)")
        lines.append(f"  {differing_line(r)}")
        body = [[m.metric, _fmt(m.committed, decimals), _fmt(m.local, decimals), _fmt(m.delta, decimals, True),
                 "[no interval]" if m.interval is None else
                 f"[{_fmt(m.interval.low, decimals, True)}, {_fmt(m.interval.high, decimals, True)}]",
                 _verdict(m.inside)] for m in r.metrics]
        lines += ["  " + line for line in _table(["metric", "committed", "local", "Δ", f"{level:.0%} interval",
                                                  "inside"], body)]
    outside = [f"{r.task} {r.phase} {r.split} {m.metric}" for r in results for m in r.metrics if m.inside is False]
    total = sum(r.differing for r in results)
    lines += ["", f"{len(results)} task/phase/split compared, {total:,} predictions differ in all; "
              + (f"outside the noise: {', '.join(outside)}" if outside else
                 "every metric with an interval agrees within noise")]
    return "\n".join(lines)


def _number(value: float | None) -> float | None:
    """JSON has no NaN: an undefined metric (e.g. HasAns_f1 without answerable questions) is null."""
    return value if value is not None and math.isfinite(value) else None


def to_json(repo: str | Path, rev: Revision, results: Sequence[SplitAgreement], resamples: int = RESAMPLES,
            seed: int = 0, level: float = LEVEL) -> dict[str, Any]:
    """Every printed number, unrounded; routes in full (None: unrecorded)."""
    return {
        "repo": str(Path(repo).resolve()),
        "committed": {"name": rev.name, "commit": rev.commit, "ref": rev.ref},
        "intervals": {"resamples": resamples, "seed": seed, "level": level,
                      "delta": "local - committed", "inside": "the interval of delta holds 0"},
        "results": [{
            "task": r.task, "phase": r.phase, "split": r.split, "n": r.n, "resampled": r.resampled,
            "routes": {"committed": r.committed_route, "local": r.local_route},
            "route_difference": r.route_difference, "routes_known": r.routes_known,
            "differing": r.differing, "differing_ids": r.differing_ids[:SHOWN_IDS],
            "abstentions_changed": r.abstentions_changed,
            "metrics": {m.metric: {"committed": _number(m.committed), "local": _number(m.local),
                                   "delta": _number(m.delta), "low": m.interval.low if m.interval else None,
                                   "high": m.interval.high if m.interval else None, "inside": m.inside}
                        for m in r.metrics},
        } for r in results],
        "all_inside": all(m.inside is not False for r in results for m in r.metrics),
    }


# ------------------------------------------------------------------------------ scripts/repro.sh's check
def readme_sync_blocker(repo: str | Path = ".", rev: str = "HEAD") -> str | None:
    """Why README.md's results block must not be rewritten silently after a rerun, or None when it may be.

    The block is copied without a question when the rerun's predictions equal those committed at `rev` (or there
    are none: a fresh repository), or when they changed on the same compute route as the committed ones (a
    params change). When they changed and the routes differ, or either run's route is unrecorded, the message
    says so and points at `tuneval agree`."""
    repo = Path(repo)
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
                          capture_output=True, text=True, check=False)
    if head.returncode != 0:
        return None  # no commit yet: nothing committed to keep
    revision = Revision(rev, head.stdout.strip())
    reasons = []
    for task in TASK_NAMES:
        for phase in PHASES:
            local_dir = repo / "predictions" / task / phase
            in_git = set(_committed_files(repo, revision, task, phase))
            here = {p.name for p in local_dir.glob("*.json")} if local_dir.is_dir() else set()
            splits = _splits(sorted(here & in_git))
            changed = [s for s in splits if read_json_at(repo, revision, predictions_path(task, phase, s))
                       != _read_local(repo, predictions_path(task, phase, s))]
            if not changed:
                continue
            committed = _route_of(read_json_at(repo, revision, run_path(task, phase))) if "run.json" in in_git \
                else None
            local = _route_of(_read_local(repo, run_path(task, phase))) if "run.json" in here else None
            difference = route_difference(committed, local, names=("committed", "this run"))
            if recorded(committed) and recorded(local) and difference is None:
                continue  # same route: the predictions changed for another reason (params, code)
            why = difference or ("the committed run's route is unrecorded" if not recorded(committed)
                                 else "this run's route is unrecorded")
            reasons.append(f"  {task} {phase} ({', '.join(changed)}): {why}")
    if not reasons:
        return None
    return "\n".join([
        f"README.md: results block NOT updated. The rerun's predictions differ from those committed at {rev} "
        "and the compute routes differ (or one is unrecorded), so the committed numbers are not simply stale:",
        *reasons,
        "Check whether the two runs agree within noise: tuneval agree",
        "To copy this run's results into README.md anyway: TUNEVAL_SYNC_README=1 scripts/repro.sh (it reruns "
        "nothing that is up to date), then commit README.md together with predictions/ and metrics/.",
    ])


# --------------------------------------------------------------------------------------------------- CLI
def add_parser(sub: Any) -> None:
    """The `agree` subcommand on an argparse subparsers object."""
    cmd = sub.add_parser("agree", help="a rerun's predictions (working tree) against the committed ones: "
                                       "differing predictions, metric differences and whether they are noise")
    cmd.add_argument("--rev", default="HEAD",
                     help="the committed predictions: a git revision or DVC experiment (default: HEAD)")
    cmd.add_argument("--task", action="append", help="only this task (repeatable; default: every task found)")
    cmd.add_argument("--phase", action="append", choices=PHASES, help="only this phase (repeatable)")
    cmd.add_argument("--metric", action="append", help="only this metric (repeatable; default: headline metrics)")
    cmd.add_argument("--repo", default=".", help="the project's git repository and working tree (default: .)")
    cmd.add_argument("--resamples", type=int, default=RESAMPLES)
    cmd.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    cmd.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH",
                     help="every number as JSON: to stdout instead of the text (--json), or also into PATH")


def cmd_agree(args: argparse.Namespace) -> int:
    from tuneval.io import write_json

    rev, results = agree(args.repo, args.rev, args.task, args.phase, args.metric, args.resamples, args.seed)
    if args.json == "-":
        print(json.dumps(to_json(args.repo, rev, results, args.resamples, args.seed), indent=2, sort_keys=True))
        return 0
    print(format_text(args.repo, rev, results, args.resamples, args.seed))
    if args.json:
        write_json(args.json, to_json(args.repo, rev, results, args.resamples, args.seed))
        print(f"wrote {args.json}")
    return 0
