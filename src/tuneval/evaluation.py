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


def build_prompts(task: Task, rows: Sequence[dict], demos: Sequence[Sequence[dict]], tokenizer,
                  max_tokens: int) -> list[list[int]]:
    """build_prompt for many rows: one batched tokenizer call; only over-long prompts take the slow path."""
    texts = ["".join(demonstration(task, d) + task.fewshot_separator for d in ds) + task.format_prompt(r)
             for r, ds in zip(rows, demos, strict=True)]
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


@torch.inference_mode()
def next_token_logprobs(model, tokenizer, prompts: Sequence[list[int]], token_ids: Sequence[int], batch_size: int,
                        desc: str = "scoring") -> list[list[float]]:
    """log p(token | prompt) for each of `token_ids`: one forward pass per batch, only the last logits kept."""
    results: list[list[float]] = [[] for _ in prompts]
    index = torch.tensor(list(token_ids), device=model.device)
    for batch in tqdm(_length_sorted_batches([len(p) for p in prompts], batch_size), desc=desc, leave=False):
        ids, mask, pos = _left_pad([prompts[i] for i in batch], tokenizer.pad_token_id, model.device)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=1).logits[:, -1]
        chosen = F.log_softmax(logits.float(), dim=-1).index_select(-1, index)
        for row, i in enumerate(batch):
            results[i] = chosen[row].tolist()
    return results


def single_token_ids(tokenizer, continuations: Sequence[str]) -> list[int] | None:
    """The token id of each continuation if every one is a single token (the fast path), else None."""
    ids = [continuation_ids(tokenizer, c) for c in continuations]
    return [i[0] for i in ids] if all(len(i) == 1 for i in ids) else None


def stop_token_ids(tokenizer, stop: str) -> list[int]:
    """Every vocabulary id whose text contains `stop` (e.g. all tokens holding a newline)."""
    ids = [i for i in range(len(tokenizer)) if stop in tokenizer.decode([i])]
    return sorted(set(ids) | {tokenizer.eos_token_id})


@torch.inference_mode()
def generate_and_score_first(model, tokenizer, prompts: Sequence[list[int]], stop: str, max_new_tokens: int,
                             batch_size: int, first_token: int | None = None) -> tuple[list[str], list[float]]:
    """Greedy decoding with the KV cache; each sequence ends at its first stop token. Also returns
    log p(first_token | prompt) read off the first decoding step (free: no extra forward pass)."""
    stops = stop_token_ids(tokenizer, stop)
    texts, first_logprobs = [""] * len(prompts), [math.nan] * len(prompts)
    for batch in tqdm(_length_sorted_batches([len(p) for p in prompts], batch_size), desc="generating",
                      leave=False):
        ids, mask, _ = _left_pad([prompts[i] for i in batch], tokenizer.pad_token_id, model.device)
        out = model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
            eos_token_id=stops, pad_token_id=tokenizer.pad_token_id,
            temperature=None, top_p=None, top_k=None,
            return_dict_in_generate=True, output_logits=first_token is not None,
        )
        if first_token is not None:
            first = F.log_softmax(out.logits[0].float(), dim=-1)[:, first_token].tolist()
        for row, i in enumerate(batch):
            texts[i] = tokenizer.decode(out.sequences[row, ids.shape[1] :], skip_special_tokens=True)
            if first_token is not None:
                first_logprobs[i] = first[row]
    return texts, first_logprobs


def generate(model, tokenizer, prompts: Sequence[list[int]], stop: str, max_new_tokens: int,
             batch_size: int) -> list[str]:
    """Greedy generations only (see generate_and_score_first)."""
    return generate_and_score_first(model, tokenizer, prompts, stop, max_new_tokens, batch_size)[0]


# ------------------------------------------------------------------------------------------------- tasks
def evaluate(task: Task, model, tokenizer, rows: Sequence[dict], train_rows: Sequence[dict],
             settings: EvalSettings) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Metrics and per-example predictions of `model` on `rows`."""
    predictions = predict(task, model, tokenizer, rows, train_rows, settings)
    return score(task, predictions), predictions


def predict(task: Task, model, tokenizer, rows: Sequence[dict], train_rows: Sequence[dict],
            settings: EvalSettings) -> list[dict[str, Any]]:
    """One prediction record per row (everything `score` needs, so metrics can be recomputed from files)."""
    demos = [pick_demos(train_rows, settings.num_fewshot, settings.seed, r["id"]) for r in rows]
    prompts = build_prompts(task, rows, demos, tokenizer, settings.max_prompt_tokens)
    if task.kind == "multiple_choice":
        return _predict_choices(task, model, tokenizer, rows, prompts, settings)
    return _predict_generation(task, model, tokenizer, rows, prompts, settings)


def score(task: Task, predictions: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Metrics from prediction records alone."""
    if task.kind == "multiple_choice":
        name_to_label = dict(zip(task.label_names, task.labels, strict=True))
        return M.classification_metrics(
            [name_to_label[p["actual"]] for p in predictions],
            [name_to_label[p["predicted"]] for p in predictions],
            task.label_names,
        )
    gold = {p["id"]: p["gold"] for p in predictions}
    preds = {p["id"]: p["prediction"] for p in predictions}
    na_probs = {p["id"]: p["no_answer_prob"] for p in predictions}
    result = M.squad_v2_scores(gold, preds, na_probs)
    answerable = [p for p in predictions if p["gold"]]
    if answerable:
        result.update(M.generation_metrics([p["gold"] for p in answerable],
                                           [p["prediction"] for p in answerable]))
    return result


def _predict_choices(task, model, tokenizer, rows, prompts, settings):
    n = len(task.choices)
    choice_ids = single_token_ids(tokenizer, task.choices)
    if choice_ids is not None:  # every label word is one token: one forward pass per prompt scores them all
        per_row = next_token_logprobs(model, tokenizer, prompts, choice_ids, settings.batch_size, task.name)
    else:
        requests = [(p, continuation_ids(tokenizer, choice)) for p in prompts for choice in task.choices]
        flat = loglikelihoods(model, tokenizer, requests, settings.batch_size, desc=f"{task.name} choices")
        per_row = [flat[i * n : (i + 1) * n] for i in range(len(prompts))]
    predictions = []
    for row, row_scores in zip(rows, per_row, strict=True):
        best = max(range(n), key=lambda c: row_scores[c])
        predictions.append({
            "id": row["id"],
            "actual": task.label_names[task.labels.index(row[task.label_field])],
            "predicted": task.label_names[best],
            "loglik": {name: round(s, 6) for name, s in zip(task.label_names, row_scores, strict=True)},
        })
    return predictions


def _predict_generation(task, model, tokenizer, rows, prompts, settings):
    # No-answer probability = p(abstention answer | prompt). A one-token abstention is read off the first
    # decoding step; a longer one costs a scoring pass.
    abstain_ids = continuation_ids(tokenizer, task.answer_prefix + task.abstain)
    single = abstain_ids[0] if len(abstain_ids) == 1 else None
    generations, abstain_lp = generate_and_score_first(
        model, tokenizer, prompts, task.stop, settings.max_new_tokens, settings.batch_size, first_token=single)
    if single is None:
        requests = [(p, abstain_ids) for p in prompts]
        abstain_lp = loglikelihoods(model, tokenizer, requests, settings.batch_size, desc="no-answer prob")
    return [
        {"id": row["id"], "generated": text, "prediction": task.to_answer(text),
         "no_answer_prob": round(math.exp(lp), 8), "gold": task.gold_answers(row)}
        for row, text, lp in zip(rows, generations, abstain_lp, strict=True)
    ]
