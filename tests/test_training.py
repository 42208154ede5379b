"""Training: kill -9 mid-run and resume gives exactly the uninterrupted result; LoRA merges; checkpoints."""

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from repo_helpers import sst2_like_rows
from safetensors.torch import load_file

from tuneval.config import TinyModelConfig, load_params
from tuneval.io import write_jsonl
from tuneval.models.tiny import build_tiny_model
from tuneval.tasks import demonstration, get_task
from tuneval.train.checkpoints import fingerprint, prepare_checkpoints
from tuneval.train.job import TRAINING_INFO, TrainJob
from tuneval.train.run import run_training

REPO = Path(__file__).resolve().parents[1]
SHAPE = TinyModelConfig(vocab_size=400, hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
                        intermediate_size=64, max_position_embeddings=512)
KILL_AT_STEP = 5  # after checkpoint-4 was written (save_steps=2), before the end (16 steps)


def small_params(**train):
    params = load_params(REPO / "params.yaml")
    return dataclasses.replace(  # fp32 and the seed's lr: equivalence checks (packing) hold to 1e-5 there
        params, epochs=2, batch_size=8, lr=2e-5, model=dataclasses.replace(params.model, dtype="float32"),
        eval=dataclasses.replace(params.eval, max_prompt_tokens=96),  # training's prompt budget (< max_length)
        train=dataclasses.replace(params.train, **{"method": "full", "per_device_batch_size": 4, "save_steps": 2,
                                                    "log_points": 16,  # 16 steps: a point every step
                                                    "max_length": 128, "eval_examples": 8, **train}),
    )


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    rows = sst2_like_rows(64)
    write_jsonl(root / "train.jsonl", rows)
    write_jsonl(root / "eval.jsonl", rows[::-1])
    texts = [demonstration(get_task("sst2"), r) for r in rows]
    model_cfg = dataclasses.replace(load_params(REPO / "params.yaml").model, name="tiny-llama", tiny=SHAPE)
    build_tiny_model(model_cfg, texts, seed=1, out_dir=root / "base")
    return root


def _job(root: Path, name: str) -> TrainJob:
    return TrainJob(task="sst2", base_model=root / "base", train_file=root / "train.jsonl",
                    out_dir=root / name / "model", live_dir=root / name / "live",
                    checkpoint_dir=root / name / "checkpoints", eval_file=root / "eval.jsonl")


def _train(root: Path, name: str, params) -> Path:
    job = _job(root, name)
    run_training(job, params)
    return job.out_dir


def _straight(root: Path) -> Path:
    """The uninterrupted run with small_params() (eval loss every 3 steps), trained once per module."""
    out = root / "straight" / "model"
    return out if out.is_dir() else _train(root, "straight", small_params())


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
    reference = _straight(setup)
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
    curves = sorted((setup / "straight" / "live" / "plots").rglob("*.tsv"))
    assert len(curves) >= 4  # loss, eval/loss, learning_rate, grad_norm, ...
    for theirs in curves:  # the resumed run's dvclive curves: each step once, same values as uninterrupted
        ours = setup / "resumed" / "live" / theirs.relative_to(setup / "straight" / "live")
        assert ours.read_text() == theirs.read_text(), f"{ours.name} differs after resume"
    metrics = [json.loads((setup / run / "live" / "metrics.json").read_text()) for run in ("resumed", "straight")]
    assert metrics[0] == metrics[1] and "eval" in metrics[0]


def test_checkpoints_from_other_params_are_discarded(tmp_path, setup):
    stamp = fingerprint(small_params(), _job(setup, "x"))
    other = fingerprint(dataclasses.replace(small_params(), lr=3e-5), _job(setup, "x"))
    assert stamp != other
    ckpt = tmp_path / "ckpt"
    assert prepare_checkpoints(ckpt, stamp) is False
    (ckpt / "checkpoint-2").mkdir()
    assert prepare_checkpoints(ckpt, stamp) is True
    assert prepare_checkpoints(ckpt, other) is False
    assert not (ckpt / "checkpoint-2").exists()


def test_lora_saves_the_adapter_alone_and_eval_loads_it_on_the_base(setup):
    from transformers import AutoModelForCausalLM

    from tuneval.models.loading import adapter_base, load_model

    out = _train(setup, "lora", small_params(method="lora"))
    info = json.loads((out / TRAINING_INFO).read_text())
    base = AutoModelForCausalLM.from_pretrained(setup / "base")
    assert info["method"] == "lora"
    assert 0 < info["trainable_parameters"] < base.num_parameters() / 4
    assert (out / "adapter_model.safetensors").is_file() and not (out / "model.safetensors").exists()
    assert adapter_base(out) == str(setup / "base")  # PEFT convention: the adapter names its base
    config = json.loads((out / "adapter_config.json").read_text())  # byte-stable: no set order in it
    assert config["target_modules"] == sorted(config["target_modules"]) and len(config["target_modules"]) > 1
    merged = load_model(out, dtype="float32")  # base + adapter, merged for inference
    assert merged.num_parameters() == base.num_parameters()
    assert not any("lora" in name for name, _ in merged.named_parameters())
    changed = [n for n, p in merged.named_parameters() if not torch.equal(p, base.get_parameter(n))]
    assert changed and all(any(m in n for m in ("q_proj", "k_proj", "v_proj", "o_proj")) for n in changed)


def _answer_batch(setup, packing: bool):
    from tuneval.models.loading import load_model, load_tokenizer
    from tuneval.train.batches import data_collator, encode_example

    params = small_params(packing=packing)
    tokenizer = load_tokenizer(setup / "base")
    model = load_model(setup / "base", dtype="float32").train()
    rows = [json.loads(line) for line in (setup / "train.jsonl").read_text().splitlines()[:6]]
    features = [encode_example(get_task("sst2"), r, tokenizer, 128) for r in rows]
    return model, data_collator(params, tokenizer, model)(features)


@pytest.mark.parametrize("packing", [False, True])
def test_answer_only_logits_give_the_full_logits_loss_and_gradients(setup, packing):
    from tuneval.train.trainer import answer_loss

    model, batch = _answer_batch(setup, packing)
    reference = model(**batch).loss  # the model's own loss: logits at every position, prompt labels -100
    reference.backward()
    ref_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    ours = answer_loss(model, batch)
    ours.backward()
    assert torch.allclose(ours, reference, atol=1e-5, rtol=1e-5)
    for name, param in model.named_parameters():
        assert torch.allclose(param.grad, ref_grads[name], atol=1e-5, rtol=1e-4), name


def test_no_prompt_position_reaches_the_lm_head(setup):
    from tuneval.train.batches import IGNORE_INDEX
    from tuneval.train.trainer import answer_loss

    model, batch = _answer_batch(setup, packing=False)
    seen = []
    hook = model.lm_head.register_forward_hook(lambda _m, args, _out: seen.append(args[0].shape[0]))
    answer_loss(model, batch)
    hook.remove()
    labels = batch["labels"]
    assert seen == [int((labels[:, 1:] != IGNORE_INDEX).sum())]  # one hidden state per answer token, no more
    assert seen[0] < labels.numel() / 5


def _logged_steps(live: Path, metric: str) -> list[int]:
    header, *rows = (live / "plots" / "metrics" / f"{metric}.tsv").read_text().splitlines()
    assert header.split("\t")[0] == "step", header
    return [int(row.split("\t")[0]) for row in rows]


def test_dvclive_logs_train_and_eval_loss_per_step_without_timings(setup):
    steps = json.loads((_straight(setup) / TRAINING_INFO).read_text())["optimizer_steps"]
    live = setup / "straight" / "live"
    assert steps == 16  # log_points=16: a point every optimizer step (x = the optimizer step)
    assert _logged_steps(live, "loss") == list(range(1, steps + 1))
    assert _logged_steps(live, "learning_rate") == list(range(1, steps + 1))
    assert _logged_steps(live, "eval/loss") == list(range(1, steps + 1))  # the end's pass is step 16's
    metrics = json.loads((live / "metrics.json").read_text())
    assert {"loss", "learning_rate", "eval"} <= set(metrics) and "loss" in metrics["eval"]
    assert "train" not in metrics, "no timings, no since-(re)start mean loss: only what reruns reproduce"


def test_two_processes_train_one_model_with_the_same_optimizer_steps(setup):
    """train.num_processes=2 runs under accelerate launch (gloo on CPU): one model, the effective batch kept."""
    from transformers import AutoModelForCausalLM

    single = _straight(setup)
    out = _train(setup, "ddp", small_params(num_processes=2))
    info, single_info = (json.loads((d / TRAINING_INFO).read_text()) for d in (out, single))
    assert info["num_processes"] == 2 and single_info["num_processes"] == 1
    assert info["optimizer_steps"] == single_info["optimizer_steps"] == 16  # 64 examples x 2 epochs / batch 8
    model = AutoModelForCausalLM.from_pretrained(out)
    base = AutoModelForCausalLM.from_pretrained(setup / "base")
    assert any(not torch.equal(p, base.get_parameter(n)) for n, p in model.named_parameters()), "nothing trained"
    ids = torch.tensor([[1, 5, 9, 3]])
    assert model.generate(ids, max_new_tokens=3, do_sample=False).shape == (1, 7)
    live = setup / "ddp" / "live"
    assert _logged_steps(live, "loss") == list(range(1, 17)), "rank 0 alone logs, once per step"
    assert not list((setup / "ddp" / "checkpoints").glob("checkpoint-*"))
    assert not (setup / "ddp" / "checkpoints" / "launch.json").exists()


def test_packed_batches_give_the_padded_loss_and_examples_never_attend_to_each_other(setup):
    """Padding-free packing: same loss and gradients as the padded batch; without restarting position ids
    (examples attending to earlier ones in the row) the loss changes, so this test can fail."""
    from transformers import AutoModelForCausalLM

    from tuneval.io import read_jsonl
    from tuneval.models.loading import load_tokenizer
    from tuneval.train.batches import CompletionCollator, data_collator, encode_example

    tokenizer = load_tokenizer(setup / "base")
    model = AutoModelForCausalLM.from_pretrained(setup / "base", attn_implementation="sdpa")
    rows = [dict(r, sentence=r["sentence"] * (i + 1)) for i, r in enumerate(read_jsonl(setup / "train.jsonl")[:5])]
    features = [encode_example(get_task("sst2"), r, tokenizer, 128) for r in rows]
    assert len({len(f["input_ids"]) for f in features}) > 1, "examples of different lengths"
    packed = data_collator(small_params(packing=True), tokenizer, model)(features)
    padded = CompletionCollator(tokenizer.pad_token_id)(features)
    assert packed["input_ids"].shape == (1, sum(len(f["input_ids"]) for f in features))
    assert "attention_mask" not in packed and packed["position_ids"][0, 0] == 0

    def loss_and_grads(batch):
        model.zero_grad()
        loss = model(**batch).loss
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters()]

    loss_packed, grads_packed = loss_and_grads(packed)
    loss_padded, grads_padded = loss_and_grads(padded)
    torch.testing.assert_close(loss_packed, loss_padded, rtol=1e-5, atol=1e-6)
    for ours, theirs in zip(grads_packed, grads_padded, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-6)

    leaky = {k: v for k, v in packed.items() if k != "position_ids"}  # one long sequence: attends across
    with torch.no_grad():
        leaked, kept = model(**leaky), model(**packed)
    assert (leaked.logits - kept.logits).abs().max() > 1e-2  # later examples see earlier ones
    assert not torch.allclose(leaked.loss, loss_padded, rtol=1e-4)


def test_training_with_packing_reaches_the_weights_of_padded_training(setup):
    """Same sampler and seed, so the same micro-batches: packed and padded runs must end at the same weights."""
    reference = _straight(setup)
    packed = _train(setup, "packed", small_params(packing=True))
    ours, theirs = load_file(packed / "model.safetensors"), load_file(reference / "model.safetensors")
    base = load_file(setup / "base" / "model.safetensors")
    for key in ours:
        assert not torch.equal(ours[key], base[key]), f"{key} did not train"
        torch.testing.assert_close(ours[key], theirs[key], rtol=1e-4, atol=1e-5, msg=f"{key} differs")


SUMMARY = re.compile(r"in ([\d.]+)s \(([\d.]+)s training, ([\d,]+) tokens/s; ([\d.]+)s in (\d+) eval-loss passes\)")


def _summary(out: str) -> tuple[float, float, int, float, int]:
    """total s, training s, tokens/s, eval-loss s, eval-loss passes: from the train summary line in `out`."""
    line = next(line for line in out.splitlines() if line.startswith("trained "))
    match = SUMMARY.search(line)
    assert match, line
    total, training, rate, evaluating, passes = match.groups()
    return float(total), float(training), int(rate.replace(",", "")), float(evaluating), int(passes)


def test_the_summary_gives_training_tokens_per_second_without_the_eval_loss_passes(setup, capsys, monkeypatch):
    from transformers import Trainer

    loop = Trainer.evaluation_loop

    def slow_loop(self, *args, **kwargs):  # the tiny model evaluates in milliseconds: make each pass visible
        time.sleep(0.3)
        return loop(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "evaluation_loop", slow_loop)
    capsys.readouterr()
    out = _train(setup, "timed", small_params())  # eval loss every 3 steps and at the end
    total, training, rate, evaluating, passes = _summary(capsys.readouterr().out)
    assert passes == len(_logged_steps(setup / "timed" / "live", "eval/loss")) >= 2
    assert evaluating >= 0.3 * passes and abs(training + evaluating - total) <= 0.11  # each printed to 0.1 s
    tokens = json.loads((out / TRAINING_INFO).read_text())["train_tokens"]
    assert tokens / (training + 0.05) <= rate + 1 and rate - 1 <= tokens / max(training - 0.05, 1e-3)


def test_watching_the_eval_loss_does_not_change_the_trained_model(setup, capsys):
    reference = _straight(setup)  # eval loss every 3 steps
    capsys.readouterr()
    blind = _train(setup, "blind", small_params(eval_examples=None))
    total, training, _, evaluating, passes = _summary(capsys.readouterr().out)
    assert (evaluating, passes, training) == (0.0, 0, total)
    assert not (setup / "blind" / "live" / "plots" / "metrics" / "eval").exists()
    ours, theirs = load_file(blind / "model.safetensors"), load_file(reference / "model.safetensors")
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), f"{key}: evaluation changed training"


def test_a_failing_rank_stops_the_launch_with_a_clear_error_and_no_model(setup, tmp_path, capfd):
    from tuneval.train.launch import LaunchError

    (tmp_path / "empty_base").mkdir()  # no config, no tokenizer: every rank fails while loading
    job = dataclasses.replace(_job(setup, "broken"), base_model=tmp_path / "empty_base")
    with pytest.raises(LaunchError, match="accelerate launch exited with status"):
        run_training(job, small_params(num_processes=2))
    assert "[rank " in capfd.readouterr().err  # each rank's own traceback reaches the console
    assert not job.out_dir.exists()
    assert not (job.checkpoint_dir / "launch.json").exists()


def test_trim_live_logs_keeps_steps_up_to_the_checkpoint_and_drops_cut_lines(tmp_path):
    from tuneval.train.checkpoints import trim_live_logs

    metrics = tmp_path / "plots" / "metrics"
    (metrics / "eval").mkdir(parents=True)
    (metrics / "loss.tsv").write_text("step\tloss\n1\t5.0\n2\t4.5\n3\t4.2\n4\t4.")
    (metrics / "eval" / "loss.tsv").write_text("step\tloss\n2\t4.9\n4\t4.7\n")
    (metrics / "grad_norm.tsv").write_text("ste")  # killed while writing the header
    trim_live_logs(tmp_path, last_step=2)
    assert (metrics / "loss.tsv").read_text() == "step\tloss\n1\t5.0\n2\t4.5\n"
    assert (metrics / "eval" / "loss.tsv").read_text() == "step\tloss\n2\t4.9\n"
    assert not (metrics / "grad_norm.tsv").exists()


def test_eval_refuses_a_finetuned_model_equal_to_its_base(setup, tmp_path):
    """An adapter that never trained (LoRA B still zero) or a full model identical to the base is refused,
    naming both paths; a trained adapter passes."""
    from safetensors.torch import load_file, save_file

    from tuneval.errors import ModelLoadError
    from tuneval.models.loading import require_trained

    trained = setup / "lora" / "model"
    if not trained.is_dir():
        trained = _train(setup, "lora", small_params(method="lora"))
    require_trained(trained, setup / "base")  # a real adapter: no error

    untrained = tmp_path / "untrained"
    shutil.copytree(trained, untrained)
    weights = load_file(untrained / "adapter_model.safetensors")
    save_file({k: torch.zeros_like(v) if "lora_B" in k else v for k, v in weights.items()},
              untrained / "adapter_model.safetensors")
    copy_of_base = tmp_path / "copy"
    shutil.copytree(setup / "base", copy_of_base)
    for finetuned in (untrained, copy_of_base):
        with pytest.raises(ModelLoadError) as err:
            require_trained(finetuned, setup / "base")
        assert str(finetuned) in str(err.value) and str(setup / "base") in str(err.value)


def test_lora_runs_with_the_same_seed_give_the_same_adapter(setup):
    """peft draws LoRA's A matrices when the adapter is attached, before the Trainer seeds anything: unseeded,
    two runs of the same commit trained different adapters (SST-2 accuracy 0.76 vs 0.83 on Gemma)."""
    first = _train(setup, "lora_a", small_params(method="lora", eval_examples=None))
    second = _train(setup, "lora_b", small_params(method="lora", eval_examples=None))
    assert (first / "adapter_model.safetensors").read_bytes() == (second / "adapter_model.safetensors").read_bytes()


@pytest.mark.parametrize("chat_template", [False, True])
def test_training_and_evaluation_build_the_same_prompt_ids(chat_template, tmp_path):
    """One prompt for both: the ids training puts before the answer equal evaluation's prompt, for a SQuAD example
    whose context must be cut (and an SST-2 one), with and without a chat template."""
    from transformers import AutoTokenizer

    from tuneval.io import read_jsonl
    from tuneval.tasks.prompting import build_prompts
    from tuneval.train.batches import IGNORE_INDEX, encode_example

    repo = Path(__file__).resolve().parents[1]
    params = load_params(repo / "params.yaml")
    squad = get_task("squad_v2")
    rows = read_jsonl(repo / "data/sample/squad_v2/validation.jsonl.gz")[:3]
    long_row = {**rows[0], "context": " ".join([rows[0]["context"]] * 8)}  # far over the prompt budget
    model_cfg = dataclasses.replace(params.model, name="tiny-llama")
    build_tiny_model(model_cfg, [r["context"] for r in rows], 1, tmp_path / "tiny")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "tiny")
    if chat_template:
        tokenizer.chat_template = "{% for m in messages %}<user>{{ m['content'] }}{% endfor %}<model>"
    budget = 128
    sst2_row = {"sentence": "a fine film ", "label": 1}
    for task, row in ((squad, long_row), (squad, rows[1]), (get_task("sst2"), sst2_row)):
        (evaluated,) = build_prompts(task, [row], [[]], tokenizer, budget, chat_template)
        trained = encode_example(task, row, tokenizer, max_length=budget + 32, max_prompt_tokens=budget,
                                 chat_template=chat_template)
        prompt_len = trained["labels"].count(IGNORE_INDEX)
        assert trained["input_ids"][:prompt_len] == evaluated
        assert trained["labels"][prompt_len:] == trained["input_ids"][prompt_len:]
    assert len(build_prompts(squad, [long_row], [[]], tokenizer, budget, chat_template)[0]) <= budget


@pytest.mark.parametrize("kernel", ["eager", "sdpa"])
def test_training_runs_the_attention_kernels_params_name(setup, kernel):
    """train.attn_implementation reaches the model the Trainer runs (eager is the CPU default: faster here)."""
    from transformers import TrainerCallback

    from tuneval.train.trainer import fit

    seen = {}

    class Spy(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            seen["kernel"] = model.config._attn_implementation

    job = _job(setup, f"attention-{kernel}")
    fit(job, small_params(attn_implementation=kernel, save_steps=None, eval_examples=None, method="lora"),
        resuming=False, callbacks=[Spy()])
    assert seen["kernel"] == kernel
    assert (job.out_dir / "adapter_model.safetensors").is_file()
