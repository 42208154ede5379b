"""Training examples as token ids, and how a batch of them is laid out (padded or packed).

The prompt comes from the same builder as evaluation (`tasks.prompting`), so a model is trained on exactly the
prompts it is scored on; the labels mask the prompt with -100, so the loss reads the answer tokens only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from tuneval.config import Params
from tuneval.tasks import Task
from tuneval.tasks.prompting import build_prompts

IGNORE_INDEX = -100  # label value the cross-entropy loss skips


def encode_example(task: Task, example: dict, tokenizer, max_length: int, max_prompt_tokens: int | None = None,
                   chat_template: bool = False) -> dict[str, list[int]]:
    """Prompt ids + target ids; labels mask the prompt with -100. The prompt is evaluation's (`build_prompts`, the
    same chat template and the same cut at `max_prompt_tokens`) as long as prompt + target fit `max_length`."""
    target = tokenizer(task.target(example), add_special_tokens=False).input_ids
    budget = max_length - len(target) if max_prompt_tokens is None else min(max_prompt_tokens, max_length - len(target))
    (prompt,) = build_prompts(task, [example], [[]], tokenizer, budget, chat_template)
    return {"input_ids": prompt + target, "labels": [IGNORE_INDEX] * len(prompt) + target}


@dataclass
class CompletionCollator:
    """Right-pads a batch to its longest example (never to a global max length)."""

    pad_token_id: int

    def __call__(self, features: Sequence[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        width = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(features), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(features), width), dtype=torch.long)
        for i, f in enumerate(features):
            n = len(f["input_ids"])
            ids[i, :n] = torch.tensor(f["input_ids"])
            labels[i, :n] = torch.tensor(f["labels"])
            mask[i, :n] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def data_collator(params: Params, tokenizer, model):
    """Length-padded batches, or padding-free packing (`train.packing`): one row per micro-batch whose position
    ids restart at every example; transformers turns that into a block-diagonal causal mask (sdpa / eager) or
    variable-length kernels (flash-attention), so no example sees another. Labels keep their -100 prompt mask."""
    if not params.train.packing:
        return CompletionCollator(tokenizer.pad_token_id)
    from transformers import DataCollatorWithFlattening

    flash = "flash" in str(getattr(model.config, "_attn_implementation", ""))
    flatten = DataCollatorWithFlattening(return_flash_attn_kwargs=flash)

    def packed(features):
        # use_cache=False: transformers only reads packed position ids when there is no KV cache; the model's
        # default (a cache, even in training) would silently let every example attend to those before it.
        return {**flatten(features), "use_cache": False}

    return packed


def answer_positions(labels: torch.Tensor) -> torch.Tensor:
    """Boolean [batch, length] mask of the positions whose logits the loss reads: position t predicts token
    t+1, so it is kept when label t+1 is an answer token. Passed to the model as `logits_to_keep`, the
    lm_head runs on these hidden states only (1 of ~30 positions on SST-2, ~5 of ~300 on SQuAD); at a
    262k vocabulary that head costs more than all transformer blocks, and its fp32 logits filled 22 GB."""
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = labels[:, 1:] != IGNORE_INDEX
    return keep
