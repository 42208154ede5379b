"""benchmarks/bench_peers.py on the tiny model: the three peer comparisons agree where they must (training losses
step by step, SQuAD v2 answers, SST-2 predictions) and the record names the machine, the date and the ratios.
No timing is asserted. The peers come from the `bench` extra (pip install -e '.[bench]')."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "bench_peers.py"

pytest.importorskip("trl", reason="TRL (the training peer) is in the bench extra: pip install -e '.[bench]'")
pytest.importorskip("lm_eval", reason="lm-evaluation-harness (the SST-2 peer) is in the bench extra: "
                                      "pip install -e '.[bench]'")


@pytest.fixture(scope="module")
def bench_peers():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import bench_peers

        yield bench_peers
    finally:
        sys.path.remove(str(SCRIPT.parent))


@pytest.mark.slow
def test_three_comparisons_agree_on_the_tiny_model(tmp_path):
    out, readme = tmp_path / "peers.json", tmp_path / "README.md"
    readme.write_text("# Benchmarks\n")
    command = [sys.executable, str(SCRIPT), "--model", "tiny", "--dtype", "float32", "--train-task", "sst2",
               "--train-steps", "2", "--warmup", "1", "--squad-n", "6", "--sst2-n", "8", "--no-append",
               "--data-dir", str(REPO / "data" / "sample"),
               "--readme", str(readme), "--out", str(out)]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert readme.read_text() == "# Benchmarks\n", "--no-append wrote to the README"
    results = json.loads(out.read_text())
    assert results["problems"] == []

    train = results["train"]
    assert [x["step"] for x in train["losses"]] == [2, 3]  # the timed steps, after one warm-up step
    for x in train["losses"]:
        assert x["trl"] == pytest.approx(x["tuneval"], rel=0.01), x
    assert train["losses_agree"] and train["batches_identical"]
    assert train["initial_adapter_equal"] and train["lora_equal"]
    assert train["lora"]["r"] == 8 and train["lora"]["target_modules"] == ["k_proj", "o_proj", "q_proj", "v_proj"]

    (squad,) = results["squad"]["runs"]  # float32: no second run
    assert squad["identical"] == results["squad"]["n"] == 6 and squad["differing"] == []
    assert results["sst2"]["identical"] == results["sst2"]["n"] == 8

    record = results["record"]
    cpu = results["machine"]["cpu"]
    assert record.startswith(f"### {results['date']}: {cpu} (")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", results["date"])
    for flag in ("avx2", "avx512f", "avx512_bf16", "amx_bf16"):
        assert flag in record
    for package in ("torch", "transformers", "peft", "accelerate", "trl", "lm_eval"):
        assert f"{package} " in record
    assert record.count("| ") > 4 and "peer / tuneval" in record
    assert re.search(r"time \d+\.\d\dx, memory \d+\.\d\dx", record)  # training: time and memory ratios
    assert len(re.findall(r"\| \d+\.\d\dx", record)) == 2  # SQuAD and SST-2 ratios
    assert "6/6 answers identical" in record and "8/8 predictions identical" in record
    assert "losses within 1% at every timed step: yes" in record
    assert "TRL" in record and "lm-eval" in record and "generate" in record


def test_records_accumulate_in_one_section(tmp_path, bench_peers):
    readme = tmp_path / "README.md"
    readme.write_text("# Benchmarks\n\nIntro.\n\n## Other\n\nText.\n")
    bench_peers.append_record(readme, "### first\n\nA.\n")
    bench_peers.append_record(readme, "### second\n\nB.\n")
    text = readme.read_text()
    assert text.count(bench_peers.SECTION) == 1
    assert text.startswith("# Benchmarks\n\nIntro.\n\n## Other\n\nText.\n\n## Peer comparisons\n")
    assert text.index("### first") < text.index("### second")
    assert text.endswith("### second\n\nB.\n")

    readme.write_text(f"# B\n\n{bench_peers.SECTION}\n\nIntro.\n\n### old\n\nX.\n\n## Later\n\nY.\n")
    bench_peers.append_record(readme, "### new\n\nZ.\n")
    text = readme.read_text()
    assert text.index("### old") < text.index("### new") < text.index("## Later")
    assert text.endswith("## Later\n\nY.\n")


def test_training_falls_back_to_float32_where_trl_would_miss_the_bf16_route(monkeypatch, bench_peers):
    monkeypatch.setattr(bench_peers, "cpu_has_native_bf16", lambda: False)
    dtype, why = bench_peers.train_dtype("bfloat16", "cpu")
    assert dtype == "float32" and "torch.mm(out=...)" in why
    assert bench_peers.train_dtype("bfloat16", "cuda") == ("bfloat16", None)
    assert bench_peers.train_dtype("float32", "cpu") == ("float32", None)
    monkeypatch.setattr(bench_peers, "cpu_has_native_bf16", lambda: True)
    assert bench_peers.train_dtype("bfloat16", "cpu") == ("bfloat16", None)


def test_a_float32_rerun_decides_the_agreement_checks(bench_peers):
    """bf16 rounds the two sides' logits differently: where bf16 losses or predictions differ, the float32 rerun
    (train_fp32, sst2_fp32) decides whether the setups match; without one, the bf16 result fails."""
    same = {"batches_identical": True, "initial_adapter_equal": True, "lora_equal": True}
    bf16 = {**same, "dtype": "bfloat16", "losses_agree": False, "max_rel_loss_diff": 0.021}
    fp32 = {**same, "dtype": "float32", "losses_agree": True, "max_rel_loss_diff": 0.0004}
    assert bench_peers.problems({"train": bf16}) == ["training losses differ by up to 2.10% at a timed step "
                                                     "(bfloat16)"]
    assert bench_peers.problems({"train": bf16, "train_fp32": fp32}) == []
    assert bench_peers.problems({"train": bf16, "train_fp32": {**fp32, "losses_agree": False}}) != []
    sst2_bf16, sst2_fp32 = {"dtype": "bfloat16", "identical": 191, "n": 200}, {"dtype": "float32", "identical": 200,
                                                                               "n": 200}
    assert bench_peers.problems({"sst2": sst2_bf16, "sst2_fp32": sst2_fp32}) == []
    assert bench_peers.problems({"sst2": sst2_bf16, "sst2_fp32": {**sst2_fp32, "identical": 199}}) == [
        "SST-2: 199/200 float32 predictions identical"]
