"""The evaluation engine: one function scores zero-shot and fine-tuned models on the same examples.

Hot paths are batched: examples sorted by length, left padding with explicit position ids, one forward pass
per batch for label scoring (logits kept only for the continuation tokens), and KV-cache `generate` that
stops each sequence at its newline.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from tuneval import metrics as M
from tuneval.tasks import Task, demonstration


@dataclass(frozen=True)
class EvalSettings:
    batch_size: int = 32
    max_prompt_tokens: int = 768
    max_new_tokens: int = 32
    num_fewshot: int = 0
    seed: int = 1


# ------------------------------------------------------------------------------------------------ prompts
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


def continuation_ids(tokenizer, continuation: str) -> list[int]:
    """Tokens of `continuation` as the model sees them after the prompt (tokenized on its own, no BOS)."""
    return tokenizer(continuation, add_special_tokens=False).input_ids


def pick_demos(train_rows: Sequence[dict], k: int, seed: int, example_id: str) -> list[dict]:
    """k demonstrations from the train split, seeded per example so both phases see the same ones."""
    if k == 0:
        return []
    rng = random.Random(f"{seed}-{example_id}")
    return rng.sample(list(train_rows), k)


# ---------------------------------------------------------------------------------------------- batching
def _left_pad(seqs: Sequence[Sequence[int]], pad_id: int, device) -> tuple[torch.Tensor, ...]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, width - len(s) :] = torch.tensor(s, dtype=torch.long)
        mask[i, width - len(s) :] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids.to(device), mask.to(device), positions.to(device)


def _length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped longest-first, so padding is small and memory peaks on the first batch."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


@torch.inference_mode()
def loglikelihoods(model, tokenizer, requests: Sequence[tuple[list[int], list[int]]], batch_size: int,
                   desc: str = "scoring") -> list[float]:
    """Sum of log p(continuation | context) for each (context ids, continuation ids) request."""
    device = model.device
    seqs = [ctx + cont for ctx, cont in requests]
    results = [0.0] * len(requests)
    for batch in tqdm(_length_sorted_batches([len(s) for s in seqs], batch_size), desc=desc, leave=False):
        ids, mask, pos = _left_pad([seqs[i] for i in batch], tokenizer.pad_token_id, device)
        keep = max(len(requests[i][1]) for i in batch) + 1
        logits = model(input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=keep).logits
        logprobs = F.log_softmax(logits[:, :-1].float(), dim=-1)  # position t predicts token t+1
        targets = ids[:, -keep + 1 :]
        token_lp = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        for row, i in enumerate(batch):
            n = len(requests[i][1])
            results[i] = token_lp[row, token_lp.shape[1] - n :].sum().item()
    return results


def stop_token_ids(tokenizer, stop: str) -> list[int]:
    """Every vocabulary id whose text contains `stop` (e.g. all tokens holding a newline)."""
    ids = [i for i in range(len(tokenizer)) if stop in tokenizer.decode([i])]
    return sorted(set(ids) | {tokenizer.eos_token_id})


@torch.inference_mode()
def generate(model, tokenizer, prompts: Sequence[list[int]], stop: str, max_new_tokens: int,
             batch_size: int) -> list[str]:
    """Greedy decoding with the KV cache; each sequence ends at its first stop token."""
    stops = stop_token_ids(tokenizer, stop)
    outputs = [""] * len(prompts)
    for batch in tqdm(_length_sorted_batches([len(p) for p in prompts], batch_size), desc="generating",
                      leave=False):
        ids, mask, _ = _left_pad([prompts[i] for i in batch], tokenizer.pad_token_id, model.device)
        out = model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
            eos_token_id=stops, pad_token_id=tokenizer.pad_token_id,
            temperature=None, top_p=None, top_k=None,
        )
        for row, i in enumerate(batch):
            outputs[i] = tokenizer.decode(out[row, ids.shape[1] :], skip_special_tokens=True)
    return outputs


# ------------------------------------------------------------------------------------------------- tasks
def evaluate(task: Task, model, tokenizer, rows: Sequence[dict], train_rows: Sequence[dict],
             settings: EvalSettings) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Metrics and per-example predictions of `model` on `rows`."""
    prompts = [
        build_prompt(task, r, pick_demos(train_rows, settings.num_fewshot, settings.seed, r["id"]),
                     tokenizer, settings.max_prompt_tokens)
        for r in tqdm(rows, desc="tokenizing", leave=False)
    ]
    if task.kind == "multiple_choice":
        return _evaluate_choices(task, model, tokenizer, rows, prompts, settings)
    return _evaluate_generation(task, model, tokenizer, rows, prompts, settings)


def _evaluate_choices(task, model, tokenizer, rows, prompts, settings):
    requests = [(p, continuation_ids(tokenizer, choice)) for p in prompts for choice in task.choices]
    scores = loglikelihoods(model, tokenizer, requests, settings.batch_size, desc=f"{task.name} choices")
    n = len(task.choices)
    predictions = []
    for i, row in enumerate(rows):
        row_scores = scores[i * n : (i + 1) * n]
        best = max(range(n), key=lambda c: row_scores[c])
        predictions.append({
            "id": row["id"],
            "actual": task.label_names[task.labels.index(row[task.label_field])],
            "predicted": task.label_names[best],
            "loglik": {name: round(s, 6) for name, s in zip(task.label_names, row_scores, strict=True)},
        })
    name_to_label = dict(zip(task.label_names, task.labels, strict=True))
    result = M.classification_metrics(
        [name_to_label[p["actual"]] for p in predictions],
        [name_to_label[p["predicted"]] for p in predictions],
        task.label_names,
    )
    return result, predictions


def _evaluate_generation(task, model, tokenizer, rows, prompts, settings):
    generations = generate(model, tokenizer, prompts, task.stop, settings.max_new_tokens, settings.batch_size)
    abstain = [(p, continuation_ids(tokenizer, task.answer_prefix + task.abstain)) for p in prompts]
    abstain_lp = loglikelihoods(model, tokenizer, abstain, settings.batch_size, desc="no-answer prob")
    predictions = []
    for row, text, lp in zip(rows, generations, abstain_lp, strict=True):
        predictions.append({
            "id": row["id"],
            "generated": text,
            "prediction": task.to_answer(text),
            "no_answer_prob": round(math.exp(lp), 8),
            "gold": task.gold_answers(row),
        })
    gold = {p["id"]: p["gold"] for p in predictions}
    preds = {p["id"]: p["prediction"] for p in predictions}
    na_probs = {p["id"]: p["no_answer_prob"] for p in predictions}
    result = M.squad_v2_scores(gold, preds, na_probs)
    answerable = [p for p in predictions if p["gold"]]
    if answerable:
        result.update(M.generation_metrics([p["gold"] for p in answerable],
                                           [p["prediction"] for p in answerable]))
    return result, predictions
