"""The evaluation engine: one function scores zero-shot and fine-tuned models on the same examples.

Hot paths are batched: examples sorted by length, left padding with explicit position ids, one forward pass
per batch for label scoring (logits kept only for the continuation tokens). Generation shares work between
prompts with a common prefix (SQuAD questions on one context) and batches everything else: the prefixes of many
groups run together in one length-sorted, left-padded pass (a prompt that shares nothing is a group of one, its
prefix all but its last token), the KV cache is indexed out to one row per prompt, and one pass over the question
suffixes followed by the abstention's first tokens starts greedy decoding and scores the whole abstention (its
tokens are then cropped off the cache), so no prompt is ever run twice. Rows are then decoded together in large
batches: on a CPU a decoding step is bound by reading the weights. On a CPU, scoring runs attention.py's kernel.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from tuneval.config import Params
from tuneval.scoring.attention import scoring_attention
from tuneval.tasks import Task
from tuneval.tasks.prompting import build_prompts, continuation_ids, pick_demos


@dataclass(frozen=True)
class EvalSettings:
    """How examples are scored; no defaults of its own: `from_params` fills it from params.yaml's `eval:`."""

    batch_size: int
    max_prompt_tokens: int
    max_new_tokens: int
    num_fewshot: int
    seed: int  # demonstrations are drawn with data.seed
    chat_template: bool

    @classmethod
    def from_params(cls, params: Params, *, batch_size: int | None = None, num_fewshot: int | None = None,
                    chat_template: bool | None = None) -> EvalSettings:
        """params.yaml's eval settings, the one builder the stages and `tuneval eval` use; an override that is not
        None (a CLI flag) wins over its param, one that is None leaves the param as it is."""
        ev = params.eval
        return cls(batch_size=ev.batch_size if batch_size is None else batch_size,
                   max_prompt_tokens=ev.max_prompt_tokens, max_new_tokens=ev.max_new_tokens,
                   num_fewshot=ev.num_fewshot if num_fewshot is None else num_fewshot,
                   seed=params.data.seed,
                   chat_template=ev.chat_template if chat_template is None else chat_template)


@dataclass(frozen=True)
class Shard:
    """The share of the work one of `world` evaluation processes does: the batches whose index (in the plan a
    single process follows) is `rank` modulo `world`. Shard() is all of it (scoring/parallel.py)."""

    rank: int = 0
    world: int = 1

    def owns(self, batch_index: int) -> bool:
        return batch_index % self.world == self.rank


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
                   desc: str = "scoring", shard: Shard = Shard()) -> list[float | None]:
    """Sum of log p(continuation | context) for each (context ids, continuation ids) request (None for requests
    in batches another shard scores)."""
    device = model.device
    seqs = [ctx + cont for ctx, cont in requests]
    results: list[float | None] = [None] * len(requests)
    batches = _length_sorted_batches([len(s) for s in seqs], batch_size)
    for batch in tqdm([b for k, b in enumerate(batches) if shard.owns(k)], desc=desc, leave=False):
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
                        desc: str = "scoring", shard: Shard = Shard()) -> list[list[float] | None]:
    """log p(token | prompt) for each of `token_ids`: one forward pass per batch, only the last logits kept (None
    for prompts in batches another shard scores)."""
    results: list[list[float] | None] = [None] * len(prompts)
    index = torch.tensor(list(token_ids), device=model.device)
    batches = _length_sorted_batches([len(p) for p in prompts], batch_size)
    for batch in tqdm([b for k, b in enumerate(batches) if shard.owns(k)], desc=desc, leave=False):
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
    texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])  # one call: 262k ids in ~1 s
    return sorted({i for i, text in enumerate(texts) if stop in text} | {tokenizer.eos_token_id})


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


# ------------------------------------------------------------------------------------ shared-prefix decoding
DECODE_BATCHES = 2  # prefill batches merged into one decoding batch (a step reads all weights, whatever the rows)
PACK_MIN_FILL = 0.7  # a prefill batch holds prefixes of >= 70% of its longest one's length (little padding)
MIN_SHARED_TOKENS = 16  # a shorter common prefix is not worth a separate prefill: such prompts are batched whole


@dataclass(frozen=True)
class PrefixGroup:
    """Prompts (indices) that start with the same `prefix_len` tokens; 0 = no sharing, batched whole."""

    members: list[int]
    prefix_len: int


def _common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def prefix_groups(prompts: Sequence[list[int]], max_group: int, min_shared: int = MIN_SHARED_TOKENS
                  ) -> list[PrefixGroup]:
    """Group prompts by a shared token prefix (sorted order puts them side by side; groups hold <= max_group).

    Every member keeps at least one token of its own after the prefix, which the suffix pass needs. Prompts that
    share fewer than `min_shared` tokens with their neighbours go into length-sorted batches without a prefix."""
    order = sorted(range(len(prompts)), key=lambda i: prompts[i])
    groups: list[PrefixGroup] = []
    loners: list[int] = []
    i = 0
    while i < len(order):
        members, shared = [order[i]], len(prompts[order[i]]) - 1
        for j in order[i + 1 : i + max_group]:
            common = min(shared, _common_prefix_len(prompts[order[i]], prompts[j]), len(prompts[j]) - 1)
            if common < min_shared or 2 * common < len(prompts[j]):  # e.g. only a title in common: not worth a
                break  # group (its suffixes, padded to the longest, would cost more than the shared prefix saves)
            members, shared = [*members, j], common
        if len(members) > 1:
            groups.append(PrefixGroup(members, shared))
        else:
            loners.append(order[i])
        i += len(members)
    loners.sort(key=lambda k: -len(prompts[k]))
    groups += [PrefixGroup(loners[k : k + max_group], 0) for k in range(0, len(loners), max_group)]
    return groups


def _cache_kw(model) -> str:
    """transformers renamed `past_key_values` to `cache` in 5.x; accept both releases."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


@dataclass
class DecodeState:
    """Rows ready for greedy decoding: their KV cache, attention mask, last position and next token."""

    cache: Any
    mask: torch.Tensor
    last_pos: torch.Tensor
    next_token: torch.Tensor
    members: list[int]  # prompt indices, one per row


@torch.inference_mode()
def _start_group(model, pad_id: int, prompts: Sequence[list[int]], group: PrefixGroup, abstain: Sequence[int]
                 ) -> tuple[DecodeState, list[float]]:
    """Prefill one group; returns its rows ready to decode and log p(abstain | prompt) for each.

    1. The shared prefix runs once (batch 1); its KV cache is repeated for every row.
    2. One pass over the suffixes, left-padded between prefix and suffix with explicit position ids. Their last
       logits give the first answer token and p(abstain[0] | prompt).
    3. A k-token abstention continues from a copy of that cache with abstain[:-1] (k-1 tokens per row, never
       the prompt again) for the rest of its probability; the copy is then dropped."""
    import copy

    from transformers import DynamicCache

    device, kw, n, p = model.device, _cache_kw(model), len(group.members), group.prefix_len
    cache = DynamicCache(config=model.config)
    if p:
        prefix = torch.tensor([prompts[group.members[0]][:p]], device=device)
        model(input_ids=prefix, use_cache=True, logits_to_keep=1, **{kw: cache})
    ids, suffix_mask, _ = _left_pad([prompts[i][p:] for i in group.members], pad_id, device)
    cache.batch_repeat_interleave(n)
    mask = torch.cat([torch.ones(n, p, dtype=torch.long, device=device), suffix_mask], dim=1)
    positions = p + (suffix_mask.cumsum(-1) - 1).clamp(min=0)
    last = F.log_softmax(model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                                 logits_to_keep=1, **{kw: cache}).logits[:, -1].float(), dim=-1)
    abstain_lp = last[:, abstain[0]]
    if len(abstain) > 1:
        k = len(abstain) - 1
        ids = torch.tensor([list(abstain[:-1])] * n, device=device)
        more = model(input_ids=ids, attention_mask=torch.cat([mask, mask.new_ones(n, k)], dim=1),
                     position_ids=positions[:, -1:] + 1 + torch.arange(k, device=device), use_cache=True,
                     logits_to_keep=k, **{kw: copy.deepcopy(cache)}).logits.float()
        target = torch.tensor(list(abstain[1:]), device=device).expand(n, k)
        abstain_lp = abstain_lp + F.log_softmax(more, dim=-1).gather(-1, target.unsqueeze(-1)).squeeze(-1).sum(-1)
    state = DecodeState(cache, mask, positions[:, -1], last.argmax(-1), list(group.members))
    return state, abstain_lp.tolist()


def _merge(model, states: Sequence[DecodeState]) -> DecodeState:
    """One decoding batch from several groups: caches and masks left-padded to the longest (pads masked out),
    exactly like left padding in batched generation. Decoding is bound by reading the weights once per step, so
    a step for 32 rows costs about what a step for 2 rows does."""
    from transformers import DynamicCache

    if len(states) == 1:
        return states[0]
    width = max(s.mask.shape[1] for s in states)
    layers = []
    for per_group in zip(*(list(s.cache) for s in states), strict=True):  # per layer: (keys, values, ...) each
        keys = [F.pad(kv[0], (0, 0, width - kv[0].shape[-2], 0)) for kv in per_group]
        values = [F.pad(kv[1], (0, 0, width - kv[1].shape[-2], 0)) for kv in per_group]
        layers.append((torch.cat(keys), torch.cat(values)))
    return DecodeState(
        cache=DynamicCache(ddp_cache_data=layers, config=model.config),
        mask=torch.cat([F.pad(s.mask, (width - s.mask.shape[1], 0)) for s in states]),
        last_pos=torch.cat([s.last_pos for s in states]),
        next_token=torch.cat([s.next_token for s in states]),
        members=[m for s in states for m in s.members],
    )


@torch.inference_mode()
def _greedy(model, state: DecodeState, stops: torch.Tensor, max_new_tokens: int) -> list[list[int]]:
    """Greedy decoding, one token per step for every row until it stops. Finished rows leave the batch once they
    are a quarter of it (leaving copies the whole KV cache, which costs more than a few idle rows)."""
    kw, cache, mask, last_pos, next_token = _cache_kw(model), state.cache, state.mask, state.last_pos, state.next_token
    outputs: list[list[int]] = [[] for _ in state.members]
    active = torch.arange(len(state.members), device=model.device)
    running = torch.ones(len(active), dtype=torch.bool, device=model.device)
    for step in range(max_new_tokens):
        for row, token, live in zip(active.tolist(), next_token.tolist(), running.tolist(), strict=True):
            if live:
                outputs[row].append(token)
        running = running & ~torch.isin(next_token, stops)
        if step == max_new_tokens - 1 or not running.any():
            break
        if 4 * int((~running).sum()) >= len(running):
            kept = running.nonzero().squeeze(-1)
            cache.batch_select_indices(kept)
            active, next_token, mask, last_pos, running = (
                active[kept], next_token[kept], mask[kept], last_pos[kept], running[kept])
        mask = torch.cat([mask, torch.ones(len(active), 1, dtype=torch.long, device=mask.device)], dim=1)
        last_pos = last_pos + 1
        logits = model(input_ids=next_token[:, None], attention_mask=mask, position_ids=last_pos[:, None],
                       use_cache=True, logits_to_keep=1, **{kw: cache}).logits[:, -1]
        next_token = logits.max(-1).indices  # the first maximum, as argmax; on bf16 5x faster than argmax
    return outputs


def _mergeable_width(model, max_new_tokens: int) -> int:
    """Longest cache that can be merged with others: below the sliding window (if any), where sliding layers
    still hold every token, so left padding them is exact. Longer groups decode on their own."""
    window = getattr(model.config.get_text_config(), "sliding_window", None)
    return 10**9 if not window else window - 1 - max_new_tokens


@torch.inference_mode()
def _start_pack(model, pad_id: int, prompts: Sequence[list[int]], units: Sequence[PrefixGroup],
                abstain: Sequence[int]) -> tuple[DecodeState, list[float]]:
    """Prefill several prefix groups at once; their rows ready to decode and log p(abstain | prompt) for each.

    1. One pass over the groups' prefixes (one row per group, left-padded; a lone prompt is its own group with
       everything but its last token as the prefix). Its KV cache is then indexed out to one row per prompt.
    2. One pass over every prompt's suffix followed by abstain[:-1], left-padded between prefix and suffix with
       explicit position ids. Its last len(abstain) logits give the first answer token, p(abstain[0] | prompt)
       and the rest of the abstention's probability; the abstention's tokens are then cropped off the cache, so
       decoding continues from the prompt alone and no prompt is ever run twice."""
    from transformers import DynamicCache

    device, kw = model.device, _cache_kw(model)
    cache = DynamicCache(config=model.config)
    heads, head_mask, head_pos = _left_pad([prompts[u.members[0]][: u.prefix_len] for u in units], pad_id, device)
    model(input_ids=heads, attention_mask=head_mask, position_ids=head_pos, use_cache=True, logits_to_keep=1,
          **{kw: cache})
    owner = torch.tensor([j for j, u in enumerate(units) for _ in u.members], device=device)
    if len(owner) > len(units):
        cache.batch_select_indices(owner)
    extra = list(abstain[:-1])
    ids, suffix_mask, _ = _left_pad([prompts[m][u.prefix_len :] + extra for u in units for m in u.members], pad_id,
                                    device)
    mask = torch.cat([head_mask[owner], suffix_mask], dim=1)
    starts = torch.tensor([u.prefix_len for u in units], device=device)[owner]
    positions = starts[:, None] + (suffix_mask.cumsum(-1) - 1).clamp(min=0)
    k = len(abstain)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=k,
                   **{kw: cache}).logits
    logprobs = F.log_softmax(logits.float(), dim=-1)  # (rows, k, vocab): position -k is the prompt's last token
    target = torch.tensor(list(abstain), device=device).expand(len(owner), k)
    abstain_lp = logprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1).sum(-1)
    next_token = logprobs[:, 0].argmax(-1)
    if extra:
        cache.crop(-len(extra))
        mask, positions = mask[:, : -len(extra)], positions[:, : -len(extra)]
    members = [m for u in units for m in u.members]
    return DecodeState(cache, mask, positions[:, -1], next_token, members), abstain_lp.tolist()


def _packs(model, prompts: Sequence[list[int]], groups: Sequence[PrefixGroup], batch_size: int,
           max_new_tokens: int, abstain: Sequence[int]) -> tuple[list[list[PrefixGroup]], list[PrefixGroup]]:
    """Prefill batches: groups (a lone prompt is a group of one, its prefix all but the last token) sorted by
    prefix length and packed up to `batch_size` rows, and the groups too wide to pad exactly (decoded alone)."""
    limit = min(_mergeable_width(model, max_new_tokens), _mergeable_width(model, len(abstain) - 1))
    units: list[PrefixGroup] = []
    alone: list[PrefixGroup] = []
    long_loners: list[int] = []
    for group in groups:
        singles = [PrefixGroup([m], len(prompts[m]) - 1) for m in group.members] if not group.prefix_len else [group]
        for unit in singles:
            if max(len(prompts[m]) for m in unit.members) <= limit and unit.prefix_len >= 1:
                units.append(unit)
            elif unit.prefix_len and len(unit.members) > 1:
                alone.append(unit)
            else:  # as before: whole prompts, length-sorted, batched together
                long_loners += unit.members
    long_loners.sort(key=lambda m: -len(prompts[m]))
    alone += [PrefixGroup(long_loners[k : k + batch_size], 0) for k in range(0, len(long_loners), batch_size)]
    units.sort(key=lambda u: -u.prefix_len)
    packs: list[list[PrefixGroup]] = []
    rows = batch_size
    for unit in units:  # a new pack when full, or when padding to its first (longest) prefix would waste > 30%
        if rows + len(unit.members) > batch_size or unit.prefix_len < PACK_MIN_FILL * packs[-1][0].prefix_len:
            packs.append([])
            rows = 0
        packs[-1].append(unit)
        rows += len(unit.members)
    return packs, alone


def _decode_batches(packs: Sequence[list[PrefixGroup]], batch_size: int) -> list[list[list[PrefixGroup]]]:
    """Consecutive prefill packs merged into decoding batches of at least `DECODE_BATCHES * batch_size` rows (the
    last one may be smaller): the unit a process decodes, planned before anything runs."""
    batches: list[list[list[PrefixGroup]]] = []
    rows = DECODE_BATCHES * batch_size
    for pack in packs:
        if rows >= DECODE_BATCHES * batch_size:
            batches.append([])
            rows = 0
        batches[-1].append(pack)
        rows += sum(len(unit.members) for unit in pack)
    return batches


def generate_shared(model, tokenizer, prompts: Sequence[list[int]], stop: str, max_new_tokens: int, batch_size: int,
                    abstain: Sequence[int], share_prefix: bool = True, shard: Shard = Shard()
                    ) -> tuple[list[str | None], list[float | None]]:
    """Greedy answers (text) and log p(abstain | prompt) for every prompt, sharing common prefixes. Groups (and
    lone prompts) are prefilled together in length-sorted batches of about `batch_size` rows and decoded in
    batches of about `DECODE_BATCHES * batch_size` rows; prompts too long to pad exactly decode alone. Prompts in
    batches another shard runs are left None."""
    stops = torch.tensor(stop_token_ids(tokenizer, stop), device=model.device)
    groups = prefix_groups(prompts, batch_size, min_shared=MIN_SHARED_TOKENS if share_prefix else 10**9)
    texts: list[str | None] = [None] * len(prompts)
    abstain_lp: list[float | None] = [None] * len(prompts)
    packs, alone = _packs(model, prompts, groups, batch_size, max_new_tokens, abstain)
    units: list[PrefixGroup | list[list[PrefixGroup]]] = [*alone, *_decode_batches(packs, batch_size)]
    mine = [unit for k, unit in enumerate(units) if shard.owns(k)]

    def decode(states: list[DecodeState]) -> None:
        state = _merge(model, states)
        for i, tokens in zip(state.members, _greedy(model, state, stops, max_new_tokens), strict=True):
            texts[i] = tokenizer.decode(tokens, skip_special_tokens=True)

    with tqdm(total=sum(len(_members(u)) for u in mine), desc="generating", leave=False) as bar:
        for unit in mine:
            if isinstance(unit, PrefixGroup):  # a group too wide to pad exactly: prefilled and decoded alone
                state, lps = _start_group(model, tokenizer.pad_token_id, prompts, unit, abstain)
                states = [state]
            else:
                started = [_start_pack(model, tokenizer.pad_token_id, prompts, pack, abstain) for pack in unit]
                states, lps = [st for st, _ in started], [lp for _, pack_lps in started for lp in pack_lps]
            for i, lp in zip([m for st in states for m in st.members], lps, strict=True):
                abstain_lp[i] = lp
            decode(states)
            bar.update(len(_members(unit)))
    return texts, abstain_lp


def _members(unit: PrefixGroup | list[list[PrefixGroup]]) -> list[int]:
    return unit.members if isinstance(unit, PrefixGroup) else [m for pack in unit for g in pack for m in g.members]


# ------------------------------------------------------------------------------------------------- tasks
def predict(task: Task, model, tokenizer, rows: Sequence[dict], train_rows: Sequence[dict],
            settings: EvalSettings) -> list[dict[str, Any]]:
    """One prediction record per row (everything `score` needs, so metrics can be recomputed from files)."""
    return records_from(task, rows, predict_raw(task, model, tokenizer, rows, train_rows, settings))


def predict_raw(task: Task, model, tokenizer, rows: Sequence[dict], train_rows: Sequence[dict],
                settings: EvalSettings, shard: Shard = Shard()) -> dict[str, list]:
    """The model's raw outputs per row (None where another shard computes them): `scores` (one log-likelihood
    per choice) for multiple choice; `texts` and `abstain_lp` for generation. JSON-safe, for gathering."""
    demos = [pick_demos(train_rows, settings.num_fewshot, settings.seed, r["id"]) for r in rows]
    prompts = build_prompts(task, rows, demos, tokenizer, settings.max_prompt_tokens, settings.chat_template)
    with scoring_attention(model):
        if task.kind == "multiple_choice":
            return {"scores": _choice_scores(task, model, tokenizer, prompts, settings, shard)}
        abstain_ids = continuation_ids(tokenizer, task.answer_prefix + task.abstain)
        texts, abstain_lp = generate_shared(model, tokenizer, prompts, task.stop, settings.max_new_tokens,
                                            settings.batch_size, abstain_ids, shard=shard)
        return {"texts": texts, "abstain_lp": abstain_lp}


def merge_raw(shards: Sequence[dict[str, list]]) -> dict[str, list]:
    """The shards' raw outputs as one: each entry from the shard that computed it (exactly one did; a row's
    choices may come from different shards, so lists merge element by element)."""
    return {key: _first_present([shard[key] for shard in shards]) for key in shards[0]}


def _first_present(values: Sequence[Any]) -> Any:
    present = [v for v in values if v is not None]
    if not present:
        raise ValueError("no shard computed this entry: the shards did not follow the same batch plan")
    if isinstance(present[0], list):
        return [_first_present(column) for column in zip(*present, strict=True)]
    return present[0]


def records_from(task: Task, rows: Sequence[dict], raw: dict[str, list]) -> list[dict[str, Any]]:
    """Prediction records from raw outputs (predict_raw, or several shards' merged)."""
    if task.kind == "multiple_choice":
        records = _choice_records(task, rows, raw["scores"])
    else:
        records = _generation_records(task, rows, raw["texts"], raw["abstain_lp"])
    if task.clusters:  # what the cluster bootstrap resamples (tuneval.scoring.stats.resampling)
        for record, row in zip(records, rows, strict=True):
            record["cluster"] = cluster_keys(task, row)
    return records


def cluster_keys(task: Task, row: dict) -> dict[str, str]:
    """The row's value of each cluster field (long texts such as a SQuAD context as a 12-hex digest)."""
    import hashlib

    def short(value: Any) -> str:
        text = str(value)
        return text if len(text) <= 80 else hashlib.sha256(text.encode()).hexdigest()[:12]

    return {field: short(row[field]) for field in task.clusters}


def _choice_scores(task, model, tokenizer, prompts, settings, shard: Shard) -> list[list[float | None] | None]:
    n = len(task.choices)
    choice_ids = single_token_ids(tokenizer, task.choices)
    if choice_ids is not None:  # every label word is one token: one forward pass per prompt scores them all
        return next_token_logprobs(model, tokenizer, prompts, choice_ids, settings.batch_size, task.name, shard)
    requests = [(p, continuation_ids(tokenizer, choice)) for p in prompts for choice in task.choices]
    flat = loglikelihoods(model, tokenizer, requests, settings.batch_size, f"{task.name} choices", shard)
    # a row's choices may sit in batches of different shards: gathered per choice, a row is None when none is here
    per_row = [flat[i * n : (i + 1) * n] for i in range(len(prompts))]
    return [scores if any(s is not None for s in scores) else None for scores in per_row]


def _choice_records(task, rows, per_row):
    n = len(task.choices)
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


def _generation_records(task, rows, generations, abstain_lp):
    # No-answer probability = p(abstention answer | prompt), from the same pass that starts decoding. It is kept
    # at full precision (and as a log-probability): a pretrained model's values (1e-8 and below) would tie
    # after rounding, and the official best_* threshold sweep orders questions by it.
    return [
        {"id": row["id"], "generated": text, "prediction": task.to_answer(text),
         "no_answer_logprob": lp, "no_answer_prob": math.exp(lp), "gold": task.gold_answers(row)}
        for row, text, lp in zip(rows, generations, abstain_lp, strict=True)
    ]
