"""Prompts as the model sees them: the same token ids for zero-shot scoring, training and fine-tuned scoring.

A task's YAML holds its template (`prompt`); this module turns an example (plus optional demonstrations) into
token ids, shortening over-long prompts the same way everywhere.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from tuneval.tasks import Task, demonstration


def build_prompt(task: Task, example: dict, demos: Sequence[dict], tokenizer, max_tokens: int) -> list[int]:
    """Token ids of the (few-shot) prompt, shortened to `max_tokens` by cutting the task's long field
    (the SQuAD context, from its end), then by dropping demonstrations, then from the left."""
    example = dict(example)
    demos = list(demos)
    for _ in range(8):
        text = "".join(demonstration(task, d) + task.fewshot_separator for d in demos)
        ids = tokenizer(text + task.format_prompt(example)).input_ids
        excess = len(ids) - max_tokens
        if excess <= 0:
            return ids
        if demos:
            demos.pop(0)
        elif task.truncate_field and example[task.truncate_field]:
            field_ids = tokenizer(example[task.truncate_field], add_special_tokens=False).input_ids
            keep = max(0, len(field_ids) - excess - 2)
            example[task.truncate_field] = tokenizer.decode(field_ids[:keep])
        else:
            break
    ids = tokenizer(task.format_prompt(example)).input_ids
    return ids[:1] + ids[len(ids) - max_tokens + 1 :] if len(ids) > max_tokens else ids


def build_prompts(task: Task, rows: Sequence[dict], demos: Sequence[Sequence[dict]], tokenizer,
                  max_tokens: int, chat_template: bool = False) -> list[list[int]]:
    """build_prompt for many rows: one batched tokenizer call; only over-long prompts take the slow path.

    `chat_template` (for instruction-tuned models) sends each prompt as one user turn through the tokenizer's
    chat template, followed by the generation prompt; the label words / answer then follow as the reply."""
    texts = ["".join(demonstration(task, d) + task.fewshot_separator for d in ds) + task.format_prompt(r)
             for r, ds in zip(rows, demos, strict=True)]
    if chat_template:
        return [chat_prompt(tokenizer, text)[-max_tokens:] for text in texts]
    prompts = tokenizer(texts).input_ids if texts else []
    return [ids if len(ids) <= max_tokens else build_prompt(task, r, ds, tokenizer, max_tokens)
            for ids, r, ds in zip(prompts, rows, demos, strict=True)]


def continuation_ids(tokenizer, continuation: str) -> list[int]:
    """Tokens of `continuation` as the model sees them after the prompt (tokenized on its own, no BOS)."""
    return tokenizer(continuation, add_special_tokens=False).input_ids


def pick_demos(train_rows: Sequence[dict], k: int, seed: int, example_id: str) -> list[dict]:
    """k demonstrations from the train split, seeded per example so both phases see the same ones."""
    if k == 0:
        return []
    rng = random.Random(f"{seed}-{example_id}")
    return rng.sample(list(train_rows), k)


def chat_prompt(tokenizer, text: str) -> list[int]:
    """`text` as the user turn of the tokenizer's chat template, ending with the assistant's turn opening."""
    from tuneval.errors import ConfigError

    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError("eval.chat_template is true but this tokenizer has no chat template (a base model?); "
                          "set eval.chat_template: false")
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                             add_generation_prompt=True)
    return tokenizer(rendered, add_special_tokens=False).input_ids
