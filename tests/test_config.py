"""params.yaml -> validated Params: the study defaults load, and every bad value is named in the error."""

from __future__ import annotations

import re

import pytest
import yaml

from tuneval.config import ConfigError, Params, load_params


def test_real_params_yaml_has_study_defaults(params):
    assert isinstance(params, Params)
    assert params.lr == pytest.approx(2e-5)
    assert isinstance(params.lr, float)
    assert params.epochs == 3
    assert params.batch_size == 8
    assert params.seed == 1
    assert params.split.test_size == pytest.approx(0.2)
    assert params.tasks == ["sst2", "squad_v2"]
    assert params.data.source == "sample"
    assert params.publish.push is False


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

    from tuneval.distributed import launch_command, launch_env

    two = dataclasses.replace(params, train=dataclasses.replace(params.train, num_processes=2))
    command = launch_command(two, tmp_path / "launch.json")
    assert command[1:4] == ["-m", "accelerate.commands.launch", "--num_processes"] and command[4] == "2"
    assert "--multi_gpu" in command and command[-3:] == ["-m", "tuneval.distributed", str(tmp_path / "launch.json")]
    config = tmp_path / "accelerate.yaml"
    config.write_text("num_machines: 2\n")
    multi = dataclasses.replace(two, train=dataclasses.replace(two.train, accelerate_config=str(config)))
    command = launch_command(multi, tmp_path / "launch.json")
    assert "--multi_gpu" not in command and command[command.index("--config_file") + 1] == str(config)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert launch_env(two)["ACCELERATE_USE_CPU"] == "true"  # else each CPU process would train on its own
