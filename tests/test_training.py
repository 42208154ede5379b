"""Training: kill -9 mid-run and resume gives exactly the uninterrupted result; LoRA merges; checkpoints."""

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tuneval.config import ModelConfig, TinyModelConfig, load_params
from tuneval.io import write_jsonl
from tuneval.modeling import build_tiny_model
from tuneval.tasks import demonstration, get_task
from tuneval.training import TRAINING_INFO, fingerprint, prepare_checkpoints, train

REPO = Path(__file__).resolve().parents[1]
SHAPE = TinyModelConfig(vocab_size=400, hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
                        intermediate_size=64, max_position_embeddings=512)
KILL_AT_STEP = 5  # after checkpoint-4 was written (save_steps=2), before the end (16 steps)


def small_params(**train):
    params = load_params(REPO / "params.yaml")
    return dataclasses.replace(
        params, epochs=2, batch_size=8,
        train=dataclasses.replace(params.train, per_device_batch_size=4, save_steps=2, logging_steps=1,
                                  max_length=128, **train),
    )


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    words = ["good", "bad", "great", "awful", "fine", "dull", "moving", "boring"]
    rows = [{"id": str(i), "sentence": f"a {words[i % 8]} film , {words[(i * 3) % 8]} end ", "label": i % 2}
            for i in range(64)]
    write_jsonl(root / "train.jsonl", rows)
    texts = [demonstration(get_task("sst2"), r) for r in rows]
    build_tiny_model(ModelConfig(name="tiny-llama", tiny=SHAPE), texts, seed=1, out_dir=root / "base")
    return root


def _train(root: Path, name: str, params) -> Path:
    out = root / name / "model"
    train(get_task("sst2"), params, root / "base", root / "train.jsonl", out, root / name / "live",
          root / name / "checkpoints")
    return out


KILLER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from transformers.trainer_callback import CallbackHandler
    sys.path.insert(0, {tests!r})
    import test_training as T

    original = CallbackHandler.on_step_end
    def on_step_end(self, args, state, control):
        if state.global_step == T.KILL_AT_STEP:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no atexit: like the OOM killer or kill -9
        return original(self, args, state, control)
    CallbackHandler.on_step_end = on_step_end
    T._train(Path({root!r}), "resumed", T.small_params())
""")


def test_killed_run_resumes_to_exactly_the_uninterrupted_result(setup, capsys):
    reference = _train(setup, "straight", small_params())
    proc = subprocess.run([sys.executable, "-c", KILLER.format(tests=str(Path(__file__).parent), root=str(setup))],
                          capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    assert proc.returncode == -9, proc.stderr[-2000:]
    checkpoints = setup / "resumed" / "checkpoints"
    assert (checkpoints / "checkpoint-4" / "trainer_state.json").is_file()
    assert not (setup / "resumed" / "model").exists()

    capsys.readouterr()
    resumed = _train(setup, "resumed", small_params())
    assert f"resuming from {checkpoints / 'checkpoint-4'}" in capsys.readouterr().out  # not a fresh start
    ours, theirs = load_file(resumed / "model.safetensors"), load_file(reference / "model.safetensors")
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), f"{key} differs after resume"
    assert not list(checkpoints.glob("checkpoint-*")), "finished runs prune their checkpoints"
    assert (resumed / TRAINING_INFO).read_bytes() == (reference / TRAINING_INFO).read_bytes()


def test_checkpoints_from_other_params_are_discarded(tmp_path, setup):
    stamp = fingerprint(small_params(), setup / "base", setup / "train.jsonl")
    other = fingerprint(dataclasses.replace(small_params(), lr=3e-5), setup / "base", setup / "train.jsonl")
    assert stamp != other
    ckpt = tmp_path / "ckpt"
    assert prepare_checkpoints(ckpt, stamp) is False
    (ckpt / "checkpoint-2").mkdir()
    assert prepare_checkpoints(ckpt, stamp) is True
    assert prepare_checkpoints(ckpt, other) is False
    assert not (ckpt / "checkpoint-2").exists()


def test_lora_trains_adapters_only_and_saves_a_merged_model(setup):
    from transformers import AutoModelForCausalLM

    out = _train(setup, "lora", small_params(method="lora"))
    info = json.loads((out / TRAINING_INFO).read_text())
    base = AutoModelForCausalLM.from_pretrained(setup / "base")
    merged = AutoModelForCausalLM.from_pretrained(out)
    assert info["method"] == "lora"
    assert 0 < info["trainable_parameters"] < base.num_parameters() / 4
    assert merged.num_parameters() == base.num_parameters()  # merged back: a plain model, no peft needed
    assert not any("lora" in name for name, _ in merged.named_parameters())
    changed = [n for n, p in merged.named_parameters() if not torch.equal(p, base.get_parameter(n))]
    assert changed and all(any(m in n for m in ("q_proj", "k_proj", "v_proj", "o_proj")) for n in changed)
