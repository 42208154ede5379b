"""What the benchmark scripts share: paths, the study's params, a model's shape and its FLOP floor, a loop timer."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import torch

from tuneval.config import Params, load_params

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"  # full SST-2, SQuAD v2 dev and 11 train articles (offline)
OFFLINE_GEMMA = Path("/tmp/exp/g270")  # google/gemma-3-270m as an HF directory, where a session prepared it
# Dense matmul throughput measured on this project's 2-core CPU (2048^2, avx512_bf16): the time floors' peaks.
PEAK_GFLOPS = {"float32": 210.0, "bfloat16": 870.0}


def study_params(**changes: Any) -> Params:
    """params.yaml (the one place defaults live), with top-level `changes`."""
    return dataclasses.replace(load_params(REPO / "params.yaml"), **changes)


def data_dir() -> Path:
    """../shared/data where it exists, else the bundled sample."""
    from tuneval.data import SAMPLE_DIR

    return SHARED_DATA if SHARED_DATA.is_dir() else SAMPLE_DIR


def dtype_name(dtype: str) -> str:
    """`auto` | `float32` | `bfloat16` -> the dtype the library actually picks here ("float32" / "bfloat16")."""
    from tuneval.models.loading import pick_dtype

    return str(pick_dtype(dtype)).removeprefix("torch.")


@dataclasses.dataclass(frozen=True)
class Shape:
    """What the FLOP floor needs of a causal LM."""

    body_params: int  # every parameter except the input embedding (and an untied lm_head)
    hidden: int
    vocab: int

    def forward_flops(self, tokens: int, logit_positions: int) -> float:
        """2 x non-embedding params x tokens + 2 x hidden x vocab x positions whose logits are computed
        (attention score FLOPs are left out: small next to the matmuls at these lengths)."""
        return 2.0 * self.body_params * tokens + 2.0 * self.hidden * self.vocab * logit_positions


def shape_of(model) -> Shape:
    total = sum(p.numel() for p in model.parameters())  # a tied lm_head is the embedding's parameter
    embed = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    body = total - embed.numel() - (0 if head is embed else head.numel())
    return Shape(body, model.config.get_text_config().hidden_size, embed.shape[0])


def shape_of_dir(model_dir: Path) -> Shape:
    """Shape of the model in `model_dir` without loading its weights (built on the meta device)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        return shape_of(AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir)))


def floor_seconds(flops: float, dtype: str) -> float:
    return flops / (PEAK_GFLOPS[dtype] * 1e9)


def loop_timer():
    """A TrainerCallback measuring the wall time of the training loop (on_train_begin to on_train_end)."""
    from transformers import TrainerCallback

    class LoopTimer(TrainerCallback):
        seconds = 0.0

        def on_train_begin(self, args, state, control, **kwargs):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.start = time.perf_counter()

        def on_train_end(self, args, state, control, **kwargs):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.seconds = time.perf_counter() - self.start

    return LoopTimer()


def print_table(rows: list[dict[str, Any]], title: str) -> None:
    """A markdown table of `rows` (the keys of the first row are the columns)."""
    if not rows:
        return
    keys = list(rows[0])
    print(f"\n{title}\n| " + " | ".join(keys) + " |\n|" + " --- |" * len(keys))
    for r in rows:
        print("| " + " | ".join(str(r[k]) for k in keys) + " |")
