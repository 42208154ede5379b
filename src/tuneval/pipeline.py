"""One function per DVC stage. Stage scripts under stages/ only parse `--task` and call these."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from tuneval import paths
from tuneval.config import PHASES, Params
from tuneval.io import atomic_path, read_json, read_jsonl, write_json, write_jsonl
from tuneval.tasks import Task, get_task
from tuneval.usage import peak_memory_mb


def prepare(task_name: str, params: Params) -> None:
    """Raw data (sample | local | hub) -> validated, normalized data/prepared/<task>/{train,validation}; the
    validation split drawn to data.validation_examples.<task> (seeded, file order kept)."""
    from tuneval.data import RAW_SPLITS, draw, load_raw, normalize

    task = get_task(task_name)
    loaded = {split: load_raw(task, split, params) for split in RAW_SPLITS}  # validate all before writing any
    rows, origin = loaded["validation"]
    wanted = params.data.validation_examples[task.name]
    loaded["validation"] = draw(rows, wanted, f"{params.data.seed}-validation"), origin
    with atomic_path(paths.prepared(task.name, "train").parent) as out:
        out.mkdir()
        for split, (rows, origin) in loaded.items():
            write_jsonl(out / f"{split}.jsonl", normalize(task, rows))
            print(f"{task.name}/{split}: {len(rows):,} rows from {origin}{_composition(task, rows)}")


def split(task_name: str, params: Params) -> None:
    """Prepared train -> seeded 80/20 split (stratified by label, or by article), then the seeded draws: the
    training examples (data.train_examples.<task>, with data.unanswerable_share for SQuAD v2) and the test side."""
    from tuneval.data import draw, draw_training, split_rows

    task = get_task(task_name)
    source = paths.prepared(task.name, "train")
    data = params.data
    train, test = split_rows(task, read_jsonl(source), params.split.test_size, data.seed, str(source))
    train = draw_training(task, train, data.train_examples[task.name], data.unanswerable_share, data.seed,
                          str(source))
    test = draw(test, data.test_examples, f"{data.seed}-test")
    write_jsonl(paths.split_file(task.name, "train"), train)
    write_jsonl(paths.split_file(task.name, "test"), test)
    print(f"{task.name} (data.seed {data.seed}): train {len(train):,}{_composition(task, train)}; "
          f"test {len(test):,}{_composition(task, test)}")


def _composition(task: Task, rows: list[dict[str, Any]]) -> str:
    """` (3 articles, 12 contexts, 33.3% unanswerable)` for tasks with clusters; `` otherwise."""
    from tuneval.data import composition

    facts = composition(task, rows)
    return f" ({facts})" if facts else ""


def base_model(params: Params) -> None:
    """models/base: the tiny model built here, a GGUF converted once into a plain HF directory, or (hub and local
    models) just the source record. The resolved source (models/source.py) is recorded in every case. Written
    atomically: a failure leaves the previous models/base as it was."""
    from tuneval.models import gguf
    from tuneval.models.loading import check_hub_model
    from tuneval.models.source import resolve_source, write_record
    from tuneval.models.tiny import build_tiny_model
    from tuneval.tasks import demonstration

    source = resolve_source(params.model)
    located = gguf.locate(params.model) if source.is_gguf else None  # checked before anything is written
    if source.kind in ("hub", "local"):
        check_hub_model(params.model)
    with atomic_path(paths.BASE_MODEL) as out:
        out.mkdir()
        if source.kind == "tiny":
            texts = [demonstration(get_task(t), row) for t in params.tasks
                     for row in read_jsonl(paths.split_file(t, "train"))]
            build_tiny_model(params.model, texts, params.data.seed, out)
            print(f"built {params.model.name} from {len(texts):,} train texts into {paths.BASE_MODEL}")
        elif located is not None:
            start = time.perf_counter()
            gguf.convert(located, out)
            print(f"converted {located.file} (sha256 {located.sha256[:12]}...) into {paths.BASE_MODEL} in "
                  f"{time.perf_counter() - start:.0f}s, peak memory {peak_memory_mb():,.0f} MiB")
        else:
            print(f"{paths.BASE_MODEL} points at {params.model.name}@{params.model.revision}")
        write_record(source, out)


def evaluate_phase(task_name: str, params: Params, *, phase: str) -> dict[str, Any]:
    """Score the base (zeroshot) or fine-tuned model on every split in eval.splits, same examples both."""
    from tuneval.data import draw
    from tuneval.models.loading import load_model, load_tokenizer, require_trained
    from tuneval.scoring.engine import EvalSettings, score
    from tuneval.scoring.parallel import check_processes, predict_parallel

    check_processes(params.eval.num_processes)  # before any model loads
    start = time.perf_counter()
    task = get_task(task_name)
    model_path = paths.BASE_MODEL if phase == "zeroshot" else paths.finetuned(task.name)
    tokenizer = load_tokenizer(model_path)
    if phase == "finetuned":
        require_trained(model_path, paths.BASE_MODEL)
    model = load_model(model_path, dtype=params.model.dtype)
    settings = EvalSettings.from_params(params)
    train_rows = read_jsonl(paths.split_file(task.name, "train"))
    results: dict[str, Any] = {}
    for split_name in params.eval.splits:
        rows = draw(read_jsonl(paths.eval_rows_file(task.name, split_name)), params.eval.limit,
                    f"{params.data.seed}-limit")
        predictions = predict_parallel(task, model, tokenizer, model_path, params.model.dtype, rows, train_rows,
                                       settings, params.eval.num_processes)
        scores = score(task, predictions)
        results[split_name] = scores
        write_json(paths.predictions(task.name, phase, split_name), predictions)
        print(f"{task.name} {phase} [{split_name}, {len(rows):,} examples]: {_headline(task, scores)}")
    print(f"{task.name} {phase}: {time.perf_counter() - start:.0f}s, peak memory {peak_memory_mb():,.0f} MiB")
    results["run"] = _run_facts(task, params, model)
    write_json(paths.predictions(task.name, phase, "run"), _run_record(task, results["run"], train_rows))
    write_json(paths.metrics_file(task.name, phase), results)
    return results


def _run_facts(task: Task, params: Params, model) -> dict[str, Any]:
    """The `run` entry of a metrics file: run-level facts, short enough for `dvc metrics show` / `dvc exp show`
    (the template itself, multi-line, is in predictions/<task>/<phase>/run.json)."""
    import hashlib

    return {
        "num_fewshot": params.eval.num_fewshot,
        "prompt_sha": hashlib.sha256(task.prompt.encode()).hexdigest()[:12],
        "dtype": str(model.dtype).removeprefix("torch."),
        "chat_template": params.eval.chat_template,
    }


def _run_record(task: Task, facts: dict[str, Any], train_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """predictions/<task>/<phase>/run.json: the run facts, the full prompt template, the metric conventions and the
    training split's label counts (a classification task's majority-class baseline; in git, like the
    predictions, so a clone recomputes the report without the DVC cache)."""
    from tuneval.scoring.metrics import CONVENTIONS

    record = {**facts, "prompt_template": task.prompt, "conventions": CONVENTIONS}
    if task.label_field:
        counts = Counter(str(row[task.label_field]) for row in train_rows)
        record["train_label_counts"] = {str(label): counts[str(label)] for label in task.labels}
    return record


def _headline(task: Task, scores: dict[str, Any]) -> str:
    """The console line: the task's own headline metrics (tasks/<task>.yaml `metrics.headline`)."""
    return ", ".join(f"{key} {scores[key]:.4g}" for key in task.metrics.headline if key in scores)


def train(task_name: str, params: Params) -> None:
    """Fine-tune the base model on the task's train split into models/<task>; the loss dvclive watches is on rows
    of the development split (the 80/20 holdout), never on the official validation set that is reported."""
    from tuneval.train.job import TrainJob
    from tuneval.train.run import run_training

    task = get_task(task_name)
    with atomic_path(paths.finetuned(task.name)) as out:
        job = TrainJob(task=task.name, base_model=paths.BASE_MODEL, train_file=paths.split_file(task.name, "train"),
                       out_dir=out, live_dir=paths.live_dir(task.name), checkpoint_dir=paths.checkpoints(task.name),
                       eval_file=paths.split_file(task.name, "test"))  # watched loss: the development split
        run_training(job, params)


def count_params(task_name: str, params: Params) -> None:
    """Parameters of the base and the fine-tuned model: total, trainable, embedding; for LoRA the adapter too."""
    from tuneval.models.counting import count_parameters
    from tuneval.train.job import TRAINING_INFO

    info = read_json(paths.finetuned(task_name) / TRAINING_INFO)
    counts = count_parameters(paths.BASE_MODEL, paths.finetuned(task_name), info["trainable_parameters"])
    write_json(paths.metrics_file(task_name, "params"), counts)
    extra = f", adapter {counts['finetuned']['adapter']:,}" if "adapter" in counts["finetuned"] else ""
    print(f"{task_name}: base {counts['base']['total']:,} parameters ({counts['base']['embedding']:,} in "
          f"embeddings), trainable {info['trainable_parameters']:,}{extra}")


def publish(task_name: str, params: Params) -> None:
    """Write publish/<task> (weights or adapter, model card); upload only if push is on and a token is set."""
    from tuneval.report.card import push_folder, resolve_repo_id
    from tuneval.report.publish import write_publish_folder

    task = get_task(task_name)
    metrics, rows, _ = compare_phases(task, params.data.seed)
    runs = {phase: metrics[phase]["run"] for phase in PHASES}
    repo_id = resolve_repo_id(params, task.name)
    with atomic_path(paths.publish_dir(task.name)) as out:
        write_publish_folder(task, params, repo_id, rows, runs, out)
    push_folder(paths.publish_dir(task.name), params, repo_id)


def report(params: Params) -> None:
    """report/summary.{md,png,json}: task x split x headline metric: baseline, zero-shot, fine-tuned and change, with
    cluster-bootstrap intervals from the predictions. Prints summary.md, whose marked block is README.md's."""
    from tuneval.report.summary import write_report

    tasks = [get_task(name) for name in params.tasks]
    rows, facts, runs = [], [], {}
    for task in tasks:
        metrics, task_rows, task_facts = compare_phases(task, params.data.seed)
        rows += task_rows
        facts += task_facts
        runs[task.name] = {phase: metrics[phase]["run"] for phase in PHASES}
    write_report(rows, facts, tasks, runs, params, paths.SUMMARY_MD, paths.SUMMARY_PNG,
                 paths.SUMMARY_MD.with_suffix(".json"))
    print(paths.SUMMARY_MD.read_text())


def compare_phases(task: Task, seed: int) -> tuple[dict[str, dict[str, Any]], list, list]:
    """Both phases' metrics files, the comparison rows (with intervals) and the facts of every split both
    evaluated. Phases scored with different run settings (dtype, prompt, shots) are refused."""
    from tuneval.config import EVAL_SPLITS
    from tuneval.report.summary import check_same_run, compare_split

    files = {phase: paths.metrics_file(task.name, phase) for phase in PHASES}
    metrics = {phase: read_json(files[phase]) for phase in PHASES}
    check_same_run(task.name, {phase: metrics[phase]["run"] for phase in PHASES}, files)
    run = read_json(paths.predictions(task.name, "finetuned", "run"))
    rows, facts = [], []
    for split_name in EVAL_SPLITS:
        if all(split_name in metrics[phase] for phase in PHASES):
            records = {phase: read_json(paths.predictions(task.name, phase, split_name)) for phase in PHASES}
            scores = {phase: metrics[phase][split_name] for phase in PHASES}
            split_rows, split_facts = compare_split(task, split_name, scores, records, seed,
                                                     run.get("train_label_counts", {}))
            rows += split_rows
            facts.append(split_facts)
    return metrics, rows, facts
