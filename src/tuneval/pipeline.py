"""One function per DVC stage. Stage scripts under stages/ only parse `--task` and call these."""

from __future__ import annotations

import shutil
from typing import Any

from tuneval import paths
from tuneval.config import Params
from tuneval.io import atomic_path, read_json, read_jsonl, write_json, write_jsonl
from tuneval.tasks import get_task

PHASES = ("zeroshot", "finetuned")


def prepare(task_name: str, params: Params) -> None:
    """Raw data (sample | local | hub) -> validated, normalized data/prepared/<task>/{train,validation}."""
    from tuneval.data import RAW_SPLITS, load_raw, normalize

    task = get_task(task_name)
    loaded = {split: load_raw(task, split, params) for split in RAW_SPLITS}  # validate all before writing any
    with atomic_path(paths.prepared(task.name, "train").parent) as out:
        out.mkdir()
        for split, (rows, origin) in loaded.items():
            write_jsonl(out / f"{split}.jsonl", normalize(task, rows))
            print(f"{task.name}/{split}: {len(rows):,} rows from {origin}")


def split(task_name: str, params: Params) -> None:
    """Prepared train -> seeded train/test split (stratified by label, or grouped by article)."""
    from tuneval.data import split_rows

    task = get_task(task_name)
    source = paths.prepared(task.name, "train")
    train, test = split_rows(task, read_jsonl(source), params.split.test_size, params.seed, str(source))
    write_jsonl(paths.split_file(task.name, "train"), train)
    write_jsonl(paths.split_file(task.name, "test"), test)
    print(f"{task.name}: {len(train):,} train / {len(test):,} test (seed {params.seed})")


def base_model(params: Params) -> None:
    """Build the tiny model (tokenizer trained on every task's train split) or record a hub model."""
    from tuneval.modeling import build_tiny_model, is_tiny, write_model_ref
    from tuneval.tasks import demonstration

    with atomic_path(paths.BASE_MODEL) as out:
        if is_tiny(params.model.name):
            texts = [
                demonstration(get_task(t), row)
                for t in params.tasks
                for row in read_jsonl(paths.split_file(t, "train"))
            ]
            build_tiny_model(params.model, texts, params.seed, out)
            print(f"built {params.model.name} from {len(texts):,} train texts into {paths.BASE_MODEL}")
        else:
            write_model_ref(params.model, out)
            print(f"{paths.BASE_MODEL} points at {params.model.name}@{params.model.revision}")


def evaluate_phase(task_name: str, params: Params, phase: str = "finetuned") -> dict[str, Any]:
    """Score the base (zeroshot) or fine-tuned model on every split in eval.splits, same examples both."""
    from tuneval.evaluation import EvalSettings, evaluate
    from tuneval.metrics import CONVENTIONS
    from tuneval.modeling import load_model, load_tokenizer

    task = get_task(task_name)
    model_path = paths.BASE_MODEL if phase == "zeroshot" else paths.finetuned(task.name)
    tokenizer = load_tokenizer(model_path)
    model = load_model(model_path, dtype=params.model.dtype)
    settings = EvalSettings(
        batch_size=params.eval.batch_size,
        max_prompt_tokens=params.eval.max_prompt_tokens,
        max_new_tokens=params.eval.max_new_tokens,
        num_fewshot=params.eval.num_fewshot,
        seed=params.seed,
    )
    train_rows = read_jsonl(paths.split_file(task.name, "train"))
    results: dict[str, Any] = {}
    for split_name in params.eval.splits:
        rows = read_jsonl(paths.eval_rows_file(task.name, split_name))[: params.eval.limit]
        scores, predictions = evaluate(task, model, tokenizer, rows, train_rows, settings)
        results[split_name] = scores
        write_json(paths.predictions(task.name, phase, split_name), predictions)
        print(f"{task.name} {phase} [{split_name}, {len(rows):,} examples]: {_headline(scores)}")
    # The conventions (BLEU/ROUGE/METEOR/SQuAD) sit beside the predictions, so `dvc metrics show` stays numeric.
    write_json(paths.predictions(task.name, phase, "conventions"), CONVENTIONS)
    results["num_fewshot"] = params.eval.num_fewshot
    write_json(paths.metrics_file(task.name, phase), results)
    return results


def _headline(scores: dict[str, Any]) -> str:
    keys = [k for k in ("accuracy", "f1", "macro_f1", "exact", "best_f1") if k in scores]
    return ", ".join(f"{k} {scores[k]:.4g}" for k in keys)


def train(task_name: str, params: Params) -> None:
    """Fine-tune the base model on the task's train split into models/<task> (eval loss on official dev rows)."""
    from tuneval.training import TrainJob
    from tuneval.training import train as run_training

    task = get_task(task_name)
    with atomic_path(paths.finetuned(task.name)) as out:
        job = TrainJob(task=task.name, base_model=paths.BASE_MODEL, train_file=paths.split_file(task.name, "train"),
                       out_dir=out, live_dir=paths.live_dir(task.name), checkpoint_dir=paths.checkpoints(task.name),
                       eval_file=paths.prepared(task.name, "validation"))
        run_training(job, params)


def count_params(task_name: str, params: Params) -> None:
    """Total, trainable and embedding parameters of the base and the fine-tuned model."""
    from tuneval.modeling import load_model
    from tuneval.training import TRAINING_INFO

    counts = {}
    for phase, path in (("base", paths.BASE_MODEL), ("finetuned", paths.finetuned(task_name))):
        counts[phase] = parameter_counts(load_model(path, dtype="float32", device="cpu"))
    info = read_json(paths.finetuned(task_name) / TRAINING_INFO)
    if info["method"] == "lora":  # the published model is merged; the adapters are what was trained
        counts["finetuned"]["adapter"] = info["trainable_parameters"]
    counts["finetuned"]["trainable"] = info["trainable_parameters"]
    write_json(paths.metrics_file(task_name, "params"), counts)
    print(f"{task_name}: {counts['finetuned']['total']:,} parameters "
          f"({counts['finetuned']['embedding']:,} in embeddings)")


def parameter_counts(model) -> dict[str, int]:
    """Unique parameters (tied input/output embeddings counted once)."""
    unique = {id(p): p for p in model.parameters()}.values()
    embedding_params = {id(p) for p in model.get_input_embeddings().parameters()}
    output = model.get_output_embeddings()
    if output is not None:
        embedding_params |= {id(p) for p in output.parameters()}
    return {
        "total": sum(p.numel() for p in unique),
        "trainable": sum(p.numel() for p in unique if p.requires_grad),
        "embedding": sum(p.numel() for p in unique if id(p) in embedding_params),
    }


def publish(task_name: str, params: Params) -> None:
    """Write publish/<task> (model, tokenizer, model card); upload only if push is on and a token is set."""
    from tuneval.publishing import build_model_card, push_folder, resolve_repo_id

    task = get_task(task_name)
    metrics = {phase: read_json(paths.metrics_file(task.name, phase)) for phase in PHASES}
    counts = read_json(paths.metrics_file(task.name, "params"))
    repo_id = resolve_repo_id(params, task.name)
    with atomic_path(paths.publish_dir(task.name)) as out:
        shutil.copytree(paths.finetuned(task.name), out)
        card = build_model_card(task, params, repo_id, metrics, counts)
        card.save(out / "README.md")
    push_folder(paths.publish_dir(task.name), params, repo_id)


def report(params: Params) -> None:
    """metrics/summary.md and metrics/summary.png: task x metric x zero-shot / fine-tuned / delta."""
    from tuneval.reporting import write_report

    metrics = {
        task: {phase: read_json(paths.metrics_file(task, phase)) for phase in PHASES} for task in params.tasks
    }
    write_report(metrics, params, paths.SUMMARY_MD, paths.SUMMARY_PNG)
    print(paths.SUMMARY_MD.read_text())
