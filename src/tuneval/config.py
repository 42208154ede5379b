"""params.yaml -> typed, validated config. Every problem names the key, the value and what is allowed."""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tuneval.errors import ConfigError
from tuneval.tasks import TASK_NAMES, get_task

# The dataclasses below give every key its type and no default: params.yaml is the one place defaults are written
# (with a comment saying what each feeds), and a key missing from a params file is an error naming it, never a
# silent fallback to a second copy of the default that could drift from the first.


@dataclass(frozen=True)
class TinyModelConfig:
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    max_position_embeddings: int


@dataclass(frozen=True)
class ModelConfig:
    name: str
    revision: str
    gguf_file: str | None
    dtype: str
    tiny: TinyModelConfig


@dataclass(frozen=True)
class DataConfig:
    source: str
    local_dir: str
    files: dict[str, dict[str, str]]
    seed: int
    train_examples: dict[str, int | None]  # per task
    unanswerable_share: float
    test_examples: int | None
    validation_examples: dict[str, int | None]  # per task
    draw_seed: int  # the training draw only: vary it to redraw training examples, the split and scored rows stay
    reserved_articles: dict[str, int | None]  # per task: official-validation articles kept for training (None: off)


@dataclass(frozen=True)
class SplitConfig:
    test_size: float
    min_train_articles: int  # a clustered task's training draw spreads over at least this many articles
    max_article_share: float  # and no article supplies more than this fraction of it


@dataclass(frozen=True)
class LoraParams:
    r: int
    alpha: int
    dropout: float
    target_modules: list[str]


@dataclass(frozen=True)
class TrainConfig:
    method: str
    lora: LoraParams
    save_steps: int | None
    activation_checkpointing: bool
    torch_compile: bool
    attn_implementation: str
    max_length: int
    per_device_batch_size: int | dict[str, int]  # one size for every task, or per task (micro_batch_size)
    warmup_steps: float  # < 1: a fraction of all optimizer steps; a whole number >= 1: steps
    weight_decay: float
    log_points: int  # training-loss and eval-loss points per run: every max(1, steps // log_points) steps
    group_by_length: bool
    packing: bool
    eval_examples: int | None
    num_processes: int
    num_machines: int
    accelerate_config: str | None


@dataclass(frozen=True)
class EvalConfig:
    splits: list[str]
    limit: int | None
    num_fewshot: int
    batch_size: int
    max_prompt_tokens: int
    max_new_tokens: int
    chat_template: bool
    num_processes: int  # data-parallel evaluation: one process per GPU (results identical to one process)


@dataclass(frozen=True)
class PublishConfig:
    repo_id: str | None
    push: bool
    private: bool
    license: str
    merge: bool


@dataclass(frozen=True)
class ReportConfig:
    allow_mixed_routes: bool  # pair phases scored on different compute routes (labelled), instead of refusing


@dataclass(frozen=True)
class Params:
    lr: float
    epochs: int
    batch_size: int
    seed: int
    tasks: list[str]
    model: ModelConfig
    data: DataConfig
    split: SplitConfig
    train: TrainConfig
    eval: EvalConfig
    publish: PublishConfig
    report: ReportConfig


TINY_MODELS = {"tiny-llama": "llama", "tiny-gemma2": "gemma2"}
DATA_SOURCES = ("sample", "local", "hub")
EVAL_SPLITS = ("test", "validation")
PHASES = ("zeroshot", "finetuned")  # the base model, then the fine-tuned one: scored by the same code
TRAIN_METHODS = ("full", "lora")
DTYPES = ("auto", "float32", "bfloat16", "float16")
ATTN_IMPLEMENTATIONS = ("eager", "sdpa", "flash_attention_2")  # transformers' names
ACCELERATE_CONFIG_DIR = "configs/accelerate"  # train.accelerate_config lives here: a dep of the train stage


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml (unknown keys are errors, not silently ignored)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found (run from the repository root, where params.yaml lives)")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level, got {type(raw).__name__}")
    return params_from_dict(raw, source=path)


def params_from_dict(raw: dict[str, Any], source: str | Path = "params") -> Params:
    """Validate a params mapping (as read from YAML, or `dataclasses.asdict(params)`) into `Params`."""
    params = _build(Params, raw, prefix="", source=Path(source))
    _check_ranges(params, Path(source))
    return params


def _build(cls: type, raw: dict[str, Any], prefix: str, source: Path) -> Any:
    """Recursively turn a dict into dataclass `cls`, rejecting unknown keys and wrong types."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in raw]
    if missing:
        raise ConfigError(
            f"{source}: missing key {prefix}{missing[0]} (every key must be set; the repository's params.yaml "
            "has each one with its default and what it does)"
        )
    unknown = sorted(set(raw) - known)
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(str(key), known, n=1)
        hint = f"did you mean {prefix}{close[0]}? " if close else ""
        raise ConfigError(
            f"{source}: unknown key {prefix}{key!s} = {raw[key]!r:.60} ({hint}allowed here: {', '.join(sorted(known))})"
        )
    values = {}
    for name, value in raw.items():
        values[name] = _coerce(hints[name], value, f"{prefix}{name}", source)
    return cls(**values)


def _coerce(hint: Any, value: Any, key: str, source: Path) -> Any:
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {key} must be a mapping, got {value!r}")
        return _build(hint, value, prefix=f"{key}.", source=source)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        members = [a for a in args if a is not type(None)]
        if len(members) > 1:  # e.g. `int | dict[str, int]`: the value's own shape picks the member
            members = [a for a in members if (typing.get_origin(a) is dict) == isinstance(value, dict)] or members
        return _coerce(members[0], value, key, source)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{source}: {key} must be a list, got {value!r}")
        (inner,) = typing.get_args(hint)
        return [_coerce(inner, v, f"{key}[{i}]", source) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {key} must be a mapping, got {value!r}")
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):  # YAML 1.1 reads `2e-5` (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ConfigError(f"{source}: {key} = {value!r} must be of type {hint.__name__}")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def micro_batch_size(train: TrainConfig, task: str) -> int:
    """Examples per forward pass and process when training `task`: train.per_device_batch_size, one size for all
    tasks or a mapping task -> size (memory grows with the micro-batch x sequence length, so short-row tasks can
    take bigger micro-batches: fewer passes for the same optimizer steps)."""
    sizes = train.per_device_batch_size
    return sizes[task] if isinstance(sizes, dict) else sizes


def _under(path: str, directory: str) -> bool:
    """`path` (relative to the repository root, or absolute) lies inside the repository's `directory`."""
    resolved = Path(path).resolve()
    return resolved.is_relative_to(Path(directory).resolve()) and resolved != Path(directory).resolve()


def _require(ok: bool, source: Path, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{source}: {key} = {value!r} is not allowed; expected {allowed}")


def _require_every_task(mapping: dict[str, Any], tasks: list[str], source: Path, key: str, note: str = "",
                        alternative: str = "") -> None:
    """A per-task mapping in params names every task in `tasks` (a missing one would fail mid-run instead)."""
    for task in tasks:
        _require(task in mapping, source, key, mapping,
                 f"{alternative}a mapping with an entry for every task in `tasks` ({task} is missing{note})")


def _check_ranges(p: Params, src: Path) -> None:
    _require(math.isfinite(p.lr) and p.lr > 0, src, "lr", p.lr, "a finite learning rate > 0")
    _require(p.epochs >= 1, src, "epochs", p.epochs, "an integer >= 1")
    _require(p.batch_size >= 1, src, "batch_size", p.batch_size, "an integer >= 1")
    for key, value in (("seed", p.seed), ("data.seed", p.data.seed), ("data.draw_seed", p.data.draw_seed)):
        _require(value >= 0, src, key, value, "a seed >= 0 (numpy and the Trainer take no negative seeds)")
    _require(bool(p.tasks), src, "tasks", p.tasks, "at least one task")
    for key, value in (("model.name", p.model.name), ("model.revision", p.model.revision),
                       ("data.local_dir", p.data.local_dir), ("publish.license", p.publish.license)):
        _require(bool(value.strip()), src, key, value, "a non-empty string")
    for key, value in (("model.gguf_file", p.model.gguf_file), ("publish.repo_id", p.publish.repo_id)):
        _require(value is None or bool(value.strip()), src, key, value, "null or a non-empty string")
    for field in dataclasses.fields(TinyModelConfig):
        value = getattr(p.model.tiny, field.name)
        _require(value >= 1, src, f"model.tiny.{field.name}", value, "an integer >= 1")
    tiny = p.model.tiny
    _require(tiny.hidden_size % tiny.num_heads == 0 and tiny.num_heads % tiny.num_kv_heads == 0, src,
             "model.tiny.num_heads", tiny.num_heads,
             f"a divisor of model.tiny.hidden_size = {tiny.hidden_size} and a multiple of model.tiny.num_kv_heads = "
             f"{tiny.num_kv_heads}")
    for i, task in enumerate(p.tasks):
        _require(task in TASK_NAMES, src, f"tasks[{i}]", task, f"one of {', '.join(TASK_NAMES)}")
    _require(p.data.source in DATA_SOURCES, src, "data.source", p.data.source, f"one of {DATA_SOURCES}")
    _require(0 < p.split.test_size < 1, src, "split.test_size", p.split.test_size, "a fraction in (0, 1)")
    counts: dict[str, Any] = {"test_examples": p.data.test_examples}
    for key in ("train_examples", "validation_examples"):
        counts |= {f"{key}.{task}": value for task, value in getattr(p.data, key).items()}
    for key, value in counts.items():
        _require(value is None or (_is_int(value) and value >= 1), src,
                 f"data.{key}", value, "null (all) or a number of examples >= 1")
    for key in ("train_examples", "validation_examples"):
        _require_every_task(getattr(p.data, key), p.tasks, src, f"data.{key}", "; empty = all")
    _require(0 <= p.data.unanswerable_share < 1, src, "data.unanswerable_share", p.data.unanswerable_share,
             "a fraction in [0, 1) (the official SQuAD v2 train set: 0.334)")
    _require_every_task(p.data.reserved_articles, p.tasks, src, "data.reserved_articles", "; empty = the official "
                        "protocol")
    for task, n in p.data.reserved_articles.items():
        grouped = task in TASK_NAMES and get_task(task).group_by is not None
        _require(n is None or (grouped and _is_int(n) and n >= 2), src, f"data.reserved_articles.{task}", n,
                 "empty (train on the train split) or, for a task with articles, a number of articles >= 2"
                 if grouped else f"empty: {task} has no articles (no group_by in its task YAML)")
    _require(_is_int(p.split.min_train_articles) and p.split.min_train_articles >= 1, src,
             "split.min_train_articles", p.split.min_train_articles, "an integer >= 1")
    _require(0 < p.split.max_article_share <= 1, src, "split.max_article_share", p.split.max_article_share,
             "a fraction in (0, 1]")
    _require(p.train.method in TRAIN_METHODS, src, "train.method", p.train.method, f"one of {TRAIN_METHODS}")
    _require(p.model.dtype in DTYPES, src, "model.dtype", p.model.dtype, f"one of {DTYPES}")
    _require(p.train.attn_implementation in ATTN_IMPLEMENTATIONS, src, "train.attn_implementation",
             p.train.attn_implementation, f"one of {ATTN_IMPLEMENTATIONS}")
    warmup = p.train.warmup_steps
    _require(warmup >= 0 and (warmup < 1 or warmup.is_integer()), src, "train.warmup_steps", warmup,
             "a fraction of all optimizer steps in [0, 1), or a whole number of steps >= 1")
    _require(p.train.num_processes >= 1, src, "train.num_processes", p.train.num_processes,
             "an integer >= 1 (processes across all machines; > 1 runs under `accelerate launch`)")
    sizes = p.train.per_device_batch_size
    per_task = {"": sizes}  # params key suffix -> micro-batch size
    if isinstance(sizes, dict):
        _require_every_task(sizes, p.tasks, src, "train.per_device_batch_size", "", "one size for every task, or ")
        per_task = {f".{task}": size for task, size in sizes.items()}
    for key, size in per_task.items():
        _require(  # size x processes: the examples in one forward pass over all ranks
            _is_int(size) and size >= 1 and p.batch_size % (size * p.train.num_processes) == 0, src,
            f"train.per_device_batch_size{key}", size,
            f"a size that, times train.num_processes={p.train.num_processes}, divides batch_size={p.batch_size} "
            "(the effective batch is per-device batch x processes x gradient accumulation)",
        )
    _require(p.train.eval_examples is None or p.train.eval_examples >= 1, src, "train.eval_examples",
             p.train.eval_examples, "null (no eval loss) or >= 1 validation examples")
    _require(p.train.log_points >= 1, src, "train.log_points", p.train.log_points,
             ">= 1 loss points per training run")
    _require(p.train.num_machines >= 1 and p.train.num_processes % p.train.num_machines == 0, src,
             "train.num_machines", p.train.num_machines,
             f"an integer >= 1 that divides train.num_processes={p.train.num_processes} (every machine runs "
             "num_processes / num_machines processes; machine rank and main address come from the environment)")
    _require(p.train.accelerate_config is None or Path(p.train.accelerate_config).is_file(), src,
             "train.accelerate_config", p.train.accelerate_config,
             "null or an existing `accelerate config` YAML file (relative to the repository root)")
    _require(p.train.accelerate_config is None or _under(p.train.accelerate_config, ACCELERATE_CONFIG_DIR), src,
             "train.accelerate_config", p.train.accelerate_config,
             f"a file under {ACCELERATE_CONFIG_DIR}/ (the train stage depends on that directory, so the config is "
             "recorded in dvc.lock and changing it retrains)")
    _require(p.train.save_steps is None or p.train.save_steps >= 1, src, "train.save_steps", p.train.save_steps,
             "null (no checkpoints) or >= 1 optimizer steps")
    _require(p.train.lora.r >= 1, src, "train.lora.r", p.train.lora.r, "a LoRA rank >= 1")
    _require(p.train.lora.alpha > 0, src, "train.lora.alpha", p.train.lora.alpha, "a LoRA scaling > 0")
    _require(p.train.weight_decay >= 0, src, "train.weight_decay", p.train.weight_decay, "a weight decay >= 0")
    _require(0 <= p.train.lora.dropout < 1, src, "train.lora.dropout", p.train.lora.dropout, "a fraction in [0, 1)")
    _require(bool(p.train.lora.target_modules), src, "train.lora.target_modules", p.train.lora.target_modules,
             "at least one module name (e.g. q_proj)")
    _require(p.train.max_length > p.eval.max_prompt_tokens, src, "train.max_length", p.train.max_length,
             f"more than eval.max_prompt_tokens = {p.eval.max_prompt_tokens} (training sees evaluation's prompt, "
             "cut the same way, plus its answer)")
    _require(p.eval.max_prompt_tokens >= 64, src, "eval.max_prompt_tokens", p.eval.max_prompt_tokens,
             ">= 64 tokens (room for a prompt)")
    _require(p.eval.max_new_tokens >= 1, src, "eval.max_new_tokens", p.eval.max_new_tokens, ">= 1")
    _require(p.eval.batch_size >= 1, src, "eval.batch_size", p.eval.batch_size, ">= 1")
    _require(p.eval.num_fewshot >= 0, src, "eval.num_fewshot", p.eval.num_fewshot, ">= 0")
    _require(p.eval.num_processes >= 1, src, "eval.num_processes", p.eval.num_processes,
             "an integer >= 1 (evaluation processes on this machine: one per GPU; 1 on a small CPU host)")
    _require(p.eval.limit is None or p.eval.limit >= 1, src, "eval.limit", p.eval.limit, "null or >= 1")
    _require(bool(p.eval.splits), src, "eval.splits", p.eval.splits, "at least one split")
    for i, split in enumerate(p.eval.splits):
        _require(split in EVAL_SPLITS, src, f"eval.splits[{i}]", split, f"one of {EVAL_SPLITS}")
    for task in p.tasks:
        files = p.data.files.get(task)
        _require(isinstance(files, dict) and {"train", "validation"} <= set(files), src,
                 f"data.files.{task}", files, "a mapping with `train` and `validation` file names")
