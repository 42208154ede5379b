"""params.yaml -> validated Params: the study defaults load, and every bad value is named in the error."""

from __future__ import annotations

import re
import typing

import pytest
import yaml

from tuneval.config import ConfigError, Params, load_params, micro_batch_size, params_from_dict


def test_real_params_yaml_loads_as_written(params, repo_root):
    """The values come from params.yaml, typed; none is pinned here (that would be a second copy of a default)."""
    raw = yaml.safe_load((repo_root / "params.yaml").read_text())
    assert isinstance(params, Params)
    assert isinstance(params.lr, float) and params.lr == pytest.approx(float(raw["lr"]))
    assert (params.epochs, params.batch_size, params.seed) == (raw["epochs"], raw["batch_size"], raw["seed"])
    assert params.split.test_size == pytest.approx(raw["split"]["test_size"])
    assert params.tasks == raw["tasks"] and params.data.source == raw["data"]["source"]
    draws = ("seed", "train_examples", "unanswerable_share", "test_examples", "validation_examples")
    assert tuple(getattr(params.data, key) for key in draws) == tuple(raw["data"][key] for key in draws)
    assert params.publish.push is raw["publish"]["push"]


def test_unmodified_copy_loads_identically(write_params, params):
    assert load_params(write_params()) == params


def _error(path) -> str:
    with pytest.raises(ConfigError) as excinfo:
        load_params(path)
    return str(excinfo.value)


def test_unknown_top_level_key(write_params):
    path = write_params(epoch=5)  # `dvc exp run -S epoch=5` adds a misspelled key
    message = _error(path)
    assert str(path) in message
    assert "unknown key epoch " in message
    assert "epochs" in message  # the allowed keys are listed


def test_unknown_nested_key(write_params):
    message = _error(write_params(train={"lrr": 1e-4}))
    assert "unknown key train.lrr" in message
    assert "per_device_batch_size" in message  # allowed keys of `train`


def test_task_not_defined(write_params):
    message = _error(write_params(tasks=["sst2", "imdb"]))
    assert "tasks[1] = 'imdb'" in message
    assert "sst2" in message and "squad_v2" in message


@pytest.mark.parametrize(("value", "shown"), [(0, "0.0"), (1.5, "1.5")])
def test_test_size_out_of_range(write_params, value, shown):
    message = _error(write_params(split={"test_size": value}))
    assert f"split.test_size = {shown}" in message
    assert "(0, 1)" in message


@pytest.mark.parametrize(("value", "shown"), [(0, "0.0"), (-1, "-1.0")])
def test_lr_not_positive(write_params, value, shown):
    message = _error(write_params(lr=value))
    assert f"lr = {shown} " in message
    assert "> 0" in message


def test_epochs_zero(write_params):
    message = _error(write_params(epochs=0))
    assert "epochs = 0 " in message
    assert ">= 1" in message


def test_batch_size_zero(write_params):
    message = _error(write_params(batch_size=0))
    assert re.search(r"\bbatch_size = 0 ", message)
    assert ">= 1" in message


def test_unknown_eval_split(write_params):
    message = _error(write_params(eval={"splits": ["test", "dev"]}))
    assert "eval.splits[1] = 'dev'" in message
    assert "validation" in message


def test_max_prompt_tokens_too_small(write_params):
    message = _error(write_params(eval={"max_prompt_tokens": 16}))
    assert "eval.max_prompt_tokens = 16 " in message
    assert ">= 64" in message


def test_per_device_batch_size_must_divide_batch_size(write_params):
    message = _error(write_params(batch_size=8, train={"per_device_batch_size": 3}))
    assert "train.per_device_batch_size = 3 " in message
    assert "batch_size=8" in message


def test_per_device_batch_size_that_divides_is_accepted(write_params):
    loaded = load_params(write_params(batch_size=8, train={"per_device_batch_size": 4}))
    assert loaded.train.per_device_batch_size == 4
    assert {micro_batch_size(loaded.train, task) for task in loaded.tasks} == {4}  # one size for every task


def test_per_device_batch_size_per_task(write_params, tmp_path):
    """A mapping gives each task its own micro-batch, each checked like a single size; a task without an entry
    is refused by name, and the effective batch reaches TrainingArguments per task."""
    import torch

    from tuneval.train.trainer import training_arguments

    path = write_params(batch_size=8, tasks=["sst2", "squad_v2"],
                        train={"per_device_batch_size": {"sst2": 8, "squad_v2": 2}})
    loaded = load_params(path)
    assert (micro_batch_size(loaded.train, "sst2"), micro_batch_size(loaded.train, "squad_v2")) == (8, 2)
    for task, accumulation in (("sst2", 1), ("squad_v2", 4)):
        args = training_arguments(loaded, task, tmp_path, torch.float32)
        assert (args.per_device_train_batch_size, args.gradient_accumulation_steps) == (8 // accumulation,
                                                                                        accumulation)
    bad = _error(write_params(batch_size=8, train={"per_device_batch_size": {"sst2": 8, "squad_v2": 3}}))
    assert "train.per_device_batch_size.squad_v2 = 3 " in bad and "batch_size=8" in bad
    raw = yaml.safe_load(path.read_text())
    raw["train"]["per_device_batch_size"] = {"sst2": 8}
    path.write_text(yaml.safe_dump(raw))
    missing = _error(path)
    assert "train.per_device_batch_size" in missing and "squad_v2 is missing" in missing
    assert "train.per_device_batch_size.sst2 = 0 " in _error(
        write_params(train={"per_device_batch_size": {"sst2": 0, "squad_v2": 4}}))


def test_wrong_type(write_params):
    message = _error(write_params(epochs="three"))
    assert "epochs = 'three'" in message
    assert "int" in message


def test_bool_is_not_an_int(write_params):
    message = _error(write_params(epochs=True))
    assert "epochs = True" in message


def test_missing_params_file(tmp_path):
    path = tmp_path / "nope" / "params.yaml"
    message = _error(path)
    assert str(path) in message
    assert "not found" in message


def test_yaml_that_is_not_a_mapping(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("- lr\n- epochs\n")
    message = _error(path)
    assert str(path) in message
    assert "mapping" in message and "list" in message


def test_invalid_yaml(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("lr: [2e-5\n")
    assert "not valid YAML" in _error(path)


def test_lr_in_exponent_notation_without_dot_is_a_float(tmp_path, repo_root):
    text = (repo_root / "params.yaml").read_text()
    text, replaced = re.subn(r"(?m)^lr: \S+", "lr: 3e-5", text)
    assert replaced == 1
    assert yaml.safe_load(text)["lr"] == "3e-5"  # the premise: YAML 1.1 reads it as a string
    path = tmp_path / "params.yaml"
    path.write_text(text)
    lr = load_params(path).lr
    assert isinstance(lr, float)
    assert lr == pytest.approx(3e-5)


def test_non_numeric_string_lr_is_rejected(write_params):
    assert "lr = 'fast'" in _error(write_params(lr="fast"))


def test_processes_times_per_device_batch_must_divide_batch_size(write_params):
    message = _error(write_params(batch_size=8, train={"per_device_batch_size": 8, "num_processes": 2}))
    assert "train.per_device_batch_size = 8 " in message and "train.num_processes=2" in message
    loaded = load_params(write_params(batch_size=8, train={"per_device_batch_size": 4, "num_processes": 2}))
    assert loaded.train.num_processes == 2


def test_missing_accelerate_config_file_is_named(write_params, tmp_path):
    message = _error(write_params(train={"accelerate_config": str(tmp_path / "nope.yaml")}))
    assert "train.accelerate_config" in message and "nope.yaml" in message


def test_launch_command_uses_plain_ddp_or_the_accelerate_config(params, tmp_path, monkeypatch):
    import dataclasses

    import torch

    from tuneval.train.launch import launch_command, launch_env

    two = dataclasses.replace(params, train=dataclasses.replace(params.train, num_processes=2))
    command = launch_command(two, tmp_path / "launch.json")
    assert command[1:4] == ["-m", "accelerate.commands.launch", "--num_processes"] and command[4] == "2"
    assert "--multi_gpu" in command and command[-3:] == ["-m", "tuneval.train.rank", str(tmp_path / "launch.json")]
    config = tmp_path / "accelerate.yaml"
    config.write_text("num_machines: 2\n")
    multi = dataclasses.replace(two, train=dataclasses.replace(two.train, accelerate_config=str(config)))
    command = launch_command(multi, tmp_path / "launch.json")
    assert "--multi_gpu" not in command and command[command.index("--config_file") + 1] == str(config)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert launch_env(two)["ACCELERATE_USE_CPU"] == "true"  # else each CPU process would train on its own


# ------------------------------------------------------------------------------- one source of truth: params.yaml
def _without(repo_root, tmp_path, dotted: str):
    """A copy of params.yaml with the key `dotted` (e.g. train.lora.r) removed."""
    raw = yaml.safe_load((repo_root / "params.yaml").read_text())
    *parents, last = dotted.split(".")
    node = raw
    for key in parents:
        node = node[key]
    del node[last]
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.mark.parametrize("key", ["seed", "data.seed", "data.unanswerable_share", "model.revision",
                                 "model.tiny.vocab_size", "train.lora.r", "eval.limit"])
def test_missing_key_is_an_error_naming_key_and_file(repo_root, tmp_path, key):
    """No silent fallback: a key absent from the file is never filled in from a second copy of the default."""
    path = _without(repo_root, tmp_path, key)
    message = _error(path)
    assert message.startswith(f"{path}: missing key {key} "), message


def test_config_dataclasses_hold_no_defaults():
    """params.yaml is the only place a default is written: a field with a default here would be a second copy.
    (Catches fields added later too.)"""
    import dataclasses

    from tuneval import config

    def walk(cls):
        for f in dataclasses.fields(cls):
            yield cls, f
            hint = typing.get_type_hints(cls)[f.name]
            if dataclasses.is_dataclass(hint):
                yield from walk(hint)

    with_defaults = [f"{cls.__name__}.{f.name}" for cls, f in walk(config.Params)
                     if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING]
    assert with_defaults == []


def test_removed_and_renamed_keys_are_rejected(write_params):
    """model.tiny.architecture fed nothing (model.name picks llama or gemma2); the train keys are named as the
    TrainingArguments they feed."""
    assert "unknown key model.tiny.architecture" in _error(write_params(model={"tiny": {"architecture": "llama"}}))
    assert "unknown key train.warmup_ratio" in _error(write_params(train={"warmup_ratio": 0.1}))
    assert "unknown key train.gradient_checkpointing" in _error(write_params(train={"gradient_checkpointing": True}))


@pytest.mark.parametrize(("value", "ok"), [(0, True), (0.1, True), (10, True), (2.5, False), (-1, False)])
def test_warmup_steps_is_a_fraction_or_whole_steps(write_params, value, ok):
    path = write_params(train={"warmup_steps": value})
    if ok:
        assert load_params(path).train.warmup_steps == value
    else:
        assert f"train.warmup_steps = {float(value)}" in _error(path)


def test_renamed_train_keys_reach_training_arguments(params, tmp_path):
    """activation_checkpointing and warmup_steps feed the TrainingArguments of the same names (transformers 5:
    warmup_steps < 1 is a fraction of all steps, >= 1 a step count)."""
    import dataclasses

    import torch

    from tuneval.train.trainer import training_arguments

    for warmup, steps_of_100 in ((0.1, 10), (7, 7)):
        train = dataclasses.replace(params.train, activation_checkpointing=True, warmup_steps=float(warmup))
        args = training_arguments(dataclasses.replace(params, train=train), "sst2", tmp_path, torch.float32)
        assert args.activation_checkpointing is True
        assert args.get_warmup_steps(100) == steps_of_100


# ------------------------------------------------------------------------------------------- the data draws
def test_max_examples_is_gone(write_params):
    """Capping by the head of a file is replaced by seeded draws (data.train/test/validation_examples)."""
    assert "unknown key data.max_examples" in _error(write_params(data={"max_examples": 500}))


@pytest.mark.parametrize("key", ["test_examples"])
def test_example_counts_are_null_or_positive(write_params, key):
    message = _error(write_params(data={key: 0}))
    assert f"data.{key} = 0 " in message and "null (all)" in message
    assert getattr(load_params(write_params(data={key: None})).data, key) is None
    assert getattr(load_params(write_params(data={key: 3})).data, key) == 3


@pytest.mark.parametrize("key", ["train_examples", "validation_examples"])
def test_train_and_validation_examples_are_per_task(write_params, key):
    message = _error(write_params(data={key: {"sst2": None, "squad_v2": 0}}))
    assert f"data.{key}.squad_v2 = 0 " in message and "null (all)" in message
    raw = yaml.safe_load(write_params().read_text())
    raw["data"][key] = {"sst2": None}
    with pytest.raises(ConfigError, match="squad_v2 is missing"):
        params_from_dict(raw)
    loaded = load_params(write_params(data={key: {"sst2": 5, "squad_v2": None}}))
    assert getattr(loaded.data, key) == {"sst2": 5, "squad_v2": None}


@pytest.mark.parametrize(("value", "ok"), [(0, True), (0.5, True), (1, False), (-0.1, False)])
def test_unanswerable_share_is_a_fraction_below_one(write_params, value, ok):
    path = write_params(data={"unanswerable_share": value})
    if ok:
        assert load_params(path).data.unanswerable_share == value
    else:
        message = _error(path)
        assert "data.unanswerable_share = " in message and "[0, 1)" in message


def test_data_seed_is_its_own_key(write_params):
    """The training seed and the data seed vary independently (dvc exp run -S seed=2 keeps every draw)."""
    loaded = load_params(write_params(seed=5, data={"seed": 9}))
    assert (loaded.seed, loaded.data.seed) == (5, 9)


def test_train_max_length_must_exceed_the_eval_prompt(write_params):
    message = _error(write_params(train={"max_length": 256}, eval={"max_prompt_tokens": 256}))
    assert "train.max_length = 256 " in message and "eval.max_prompt_tokens = 256" in message


@pytest.mark.parametrize(("value", "ok"), [("eager", True), ("sdpa", True), ("flash", False), (None, False)])
def test_training_attention_is_one_of_transformers_kernels(write_params, value, ok):
    path = write_params(train={"attn_implementation": value})
    if ok:
        assert load_params(path).train.attn_implementation == value
    else:
        message = _error(path)
        assert "train.attn_implementation" in message and ("'eager', 'sdpa', 'flash_attention_2'" in message
                                                           or "must be of type str" in message)


@pytest.mark.parametrize("override, changed_lines", [("train.per_device_batch_size.sst2=4", 1),
                                                     ("train.per_device_batch_size=4", 3)])
def test_dvc_set_of_the_micro_batch_per_task_or_for_all(tmp_path, repo_root, override, changed_lines):
    """`dvc exp run -S` can set one task's micro-batch (one line changes) or one size for all (the mapping
    becomes a number); either way the file loads and every task gets the size set."""
    import difflib
    import shutil

    from dvc.utils.hydra import apply_overrides

    path = tmp_path / "params.yaml"
    shutil.copy(repo_root / "params.yaml", path)
    before = path.read_text().splitlines()
    apply_overrides(str(path), [override])
    diff = [line for line in difflib.unified_diff(before, path.read_text().splitlines(), lineterm="", n=0)
            if line[:1] == "-" and not line.startswith("---")]
    assert len(diff) == changed_lines
    train, default = load_params(path).train, load_params(repo_root / "params.yaml").train
    assert micro_batch_size(train, "sst2") == 4
    squad = 4 if "sst2" not in override else micro_batch_size(default, "squad_v2")  # untouched by a per-task set
    assert micro_batch_size(train, "squad_v2") == squad
