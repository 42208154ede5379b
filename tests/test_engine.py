"""Evaluation engine and training encoding on a tiny model built in a temp dir (seconds on CPU)."""

import dataclasses
from pathlib import Path

import pytest
import torch

from tuneval.config import TinyModelConfig, load_params
from tuneval.models.counting import parameter_counts
from tuneval.models.loading import load_model, load_tokenizer
from tuneval.models.tiny import build_tiny_model
from tuneval.scoring import engine as E
from tuneval.scoring.scores import score
from tuneval.tasks import demonstration, get_task
from tuneval.tasks import prompting as P
from tuneval.train.batches import IGNORE_INDEX, CompletionCollator, encode_example

REPO = Path(__file__).resolve().parents[1]
SHAPE = TinyModelConfig(vocab_size=400, hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
                        intermediate_size=64, max_position_embeddings=512)


def _sst2_rows(n=24):
    words = ["good", "bad", "great", "awful", "fine", "dull", "moving", "boring"]
    return [{"id": str(i), "idx": i, "sentence": f"a {words[i % 8]} film , {words[(i * 3) % 8]} end ",
             "label": i % 2} for i in range(n)]


def _squad_rows(n=12):
    rows = []
    for i in range(n):
        context = f"The river {i} flows through the town of Alder{i} in the north. It is {i + 3} miles long."
        answerable = i % 3 != 0
        text = f"Alder{i}"
        rows.append({"id": f"q{i}", "title": f"T{i % 4}", "context": context,
                     "question": f"Which town does river {i} flow through?",
                     "answers": {"text": [text] if answerable else [],
                                 "answer_start": [context.index(text)] if answerable else []}})
    return rows


@pytest.fixture(scope="module", params=["tiny-llama", "tiny-gemma2"])
def tiny(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param)
    texts = [demonstration(get_task("sst2"), r) for r in _sst2_rows()]
    texts += [demonstration(get_task("squad_v2"), r) for r in _squad_rows()]
    model_cfg = dataclasses.replace(load_params(REPO / "params.yaml").model, name=request.param, tiny=SHAPE)
    build_tiny_model(model_cfg, texts * 3, seed=1, out_dir=out)
    return out, load_tokenizer(out), load_model(out, dtype="float32", device="cpu")


def test_saved_model_is_a_plain_hf_directory(tiny):
    from transformers import AutoConfig

    path, _, model = tiny
    assert (path / "config.json").is_file() and (path / "tokenizer.json").is_file()
    assert AutoConfig.from_pretrained(path).model_type in {"llama", "gemma2"}
    assert model.config.model_type == AutoConfig.from_pretrained(path).model_type


def test_batched_scores_equal_per_example_scores(tiny):
    _, tok, model = tiny
    task = get_task("sst2")
    prompts = [P.build_prompt(task, r, [], tok, 256) for r in _sst2_rows(10)]
    requests = [(p, P.continuation_ids(tok, c)) for p in prompts for c in task.choices]
    batched = E.loglikelihoods(model, tok, requests, batch_size=8)
    single = E.loglikelihoods(model, tok, requests, batch_size=1)
    assert batched == pytest.approx(single, abs=1e-4)
    assert all(s < 0 for s in single)


def test_loglikelihood_matches_a_plain_forward_pass(tiny):
    _, tok, model = tiny
    ctx, cont = tok("Answer:").input_ids, tok(" positive", add_special_tokens=False).input_ids
    (engine,) = E.loglikelihoods(model, tok, [(ctx, cont)], batch_size=1)
    with torch.no_grad():
        logits = model(torch.tensor([ctx + cont])).logits[0].float()
    logprobs = torch.log_softmax(logits, -1)
    manual = sum(logprobs[len(ctx) - 1 + j, t].item() for j, t in enumerate(cont))
    assert engine == pytest.approx(manual, abs=1e-4)


def test_batched_generation_equals_one_by_one(tiny):
    _, tok, model = tiny
    task = get_task("squad_v2")
    prompts = [P.build_prompt(task, r, [], tok, 256) for r in _squad_rows(6)]
    batched = E.generate(model, tok, prompts, "\n", max_new_tokens=6, batch_size=4)
    single = [E.generate(model, tok, [p], "\n", max_new_tokens=6, batch_size=1)[0] for p in prompts]
    assert batched == single


def test_predictions_score_into_metrics_with_a_prediction_per_example(tiny):
    _, tok, model = tiny
    settings = E.EvalSettings(batch_size=4, max_prompt_tokens=256, max_new_tokens=4, num_fewshot=0, seed=1,
                              chat_template=False)
    preds = E.predict(get_task("sst2"), model, tok, _sst2_rows(8), _sst2_rows(), settings)
    scores = score(get_task("sst2"), preds)
    assert len(preds) == 8 and 0 <= scores["accuracy"] <= 1
    assert scores["accuracy"] == pytest.approx(sum(p["actual"] == p["predicted"] for p in preds) / 8)
    preds = E.predict(get_task("squad_v2"), model, tok, _squad_rows(6), [], settings)
    scores = score(get_task("squad_v2"), preds)
    assert {"exact", "f1", "HasAns_total", "NoAns_total", "best_f1", "best_f1_thresh"} <= set(scores)
    assert all(0 <= p["no_answer_prob"] <= 1 for p in preds)


def test_prompt_truncation_cuts_the_context_and_keeps_the_question(tiny):
    _, tok, _ = tiny
    task = get_task("squad_v2")
    row = _squad_rows(2)[1]
    row = {**row, "context": row["context"] * 40}
    ids = P.build_prompt(task, row, [], tok, 80)
    assert len(ids) <= 80
    text = tok.decode(ids)
    assert text.rstrip().endswith("Answer:") and row["question"] in text


def test_fewshot_demos_are_seeded_per_example():
    train = [{"id": str(i)} for i in range(50)]
    assert P.pick_demos(train, 3, 1, "a") == P.pick_demos(train, 3, 1, "a")
    assert P.pick_demos(train, 3, 1, "a") != P.pick_demos(train, 3, 2, "a")
    assert P.pick_demos(train, 0, 1, "a") == []


def test_training_labels_cover_the_answer_tokens_only(tiny):
    _, tok, _ = tiny
    for task, row in ((get_task("sst2"), _sst2_rows()[1]), (get_task("squad_v2"), _squad_rows()[1])):
        enc = encode_example(task, row, tok, 256)
        target = tok(task.target(row), add_special_tokens=False).input_ids
        supervised = [t for t in enc["labels"] if t != IGNORE_INDEX]
        assert supervised == target, "loss must see exactly the answer tokens"
        n_prompt = len(enc["input_ids"]) - len(target)
        assert enc["labels"][:n_prompt] == [IGNORE_INDEX] * n_prompt
        assert enc["input_ids"][n_prompt:] == target


def test_collator_pads_to_the_longest_in_batch_and_masks_padding():
    batch = CompletionCollator(pad_token_id=0)([
        {"input_ids": [5, 6, 7], "labels": [-100, -100, 7]},
        {"input_ids": [5, 6], "labels": [-100, 6]},
    ])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [5, 6, 0]]
    assert batch["labels"].tolist() == [[-100, -100, 7], [-100, 6, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]


def test_parameter_counts_count_tied_embeddings_once(tiny):
    _, tok, model = tiny
    counts = parameter_counts(model)
    assert counts["total"] == sum(p.numel() for p in model.parameters())  # .parameters() dedups ties
    assert counts["embedding"] == len(tok) * SHAPE.hidden_size
    assert counts["trainable"] == counts["total"]
    assert all(isinstance(v, int) for v in counts.values())


def test_single_token_fast_path_equals_the_general_scoring_path(tiny):
    _, tok, model = tiny
    task = get_task("sst2")
    ids = E.single_token_ids(tok, task.choices)
    assert ids is not None, "the tiny tokenizer has one token per label word"
    prompts = [P.build_prompt(task, r, [], tok, 256) for r in _sst2_rows(9)]
    fast = E.next_token_logprobs(model, tok, prompts, ids, batch_size=4)
    general = E.loglikelihoods(model, tok, [(p, [i]) for p in prompts for i in ids], batch_size=4)
    assert [x for row in fast for x in row] == pytest.approx(general, abs=1e-4)


def test_first_step_logprob_equals_scoring_the_abstention(tiny):
    _, tok, model = tiny
    task = get_task("squad_v2")
    prompts = [P.build_prompt(task, r, [], tok, 256) for r in _squad_rows(5)]
    (abstain,) = P.continuation_ids(tok, task.answer_prefix + task.abstain)
    _, first = E.generate_and_score_first(model, tok, prompts, "\n", 4, batch_size=3, first_token=abstain)
    scored = E.loglikelihoods(model, tok, [(p, [abstain]) for p in prompts], batch_size=3)
    assert first == pytest.approx(scored, abs=1e-4)


def test_batched_prompt_building_equals_one_by_one(tiny):
    _, tok, _ = tiny
    task = get_task("squad_v2")
    rows = _squad_rows(6)
    rows[2] = {**rows[2], "context": rows[2]["context"] * 30}  # over-long: takes the truncating path
    demos = [P.pick_demos(_squad_rows(), 1, 1, r["id"]) for r in rows]
    batched = P.build_prompts(task, rows, demos, tok, 120)
    assert batched == [P.build_prompt(task, r, d, tok, 120) for r, d in zip(rows, demos, strict=True)]
    assert max(len(p) for p in batched) <= 120


def _shared_context_rows() -> list[dict]:
    """SQuAD-like rows: three contexts, four questions each (the dev set has ~10 per context)."""
    rows = []
    for c in range(3):
        context = f"The river {c} flows through the town of Alder{c} in the north. It is {c + 3} miles long. " * 2
        for q, question in enumerate(["Which town?", "How long is the river?", "Where is it?", "What flows?"]):
            answerable = q != 3
            rows.append({"id": f"c{c}q{q}", "title": f"T{c}", "context": context, "question": question,
                         "answers": {"text": [f"Alder{c}"] if answerable else [],
                                     "answer_start": [context.index(f"Alder{c}")] if answerable else []}})
    return rows


@pytest.mark.parametrize("abstain_text", [" unanswerable", " there is no answer here"])
def test_shared_prefix_generation_equals_the_unshared_path(tiny, abstain_text):
    """Greedy outputs and no-answer log-probabilities equal HF generate + a separate scoring pass (fp32), for a
    one-token and a multi-token abstention; and the shared path really runs each shared prefix once."""
    _, tok, model = tiny
    task = get_task("squad_v2")
    rows = _shared_context_rows()
    prompts = P.build_prompts(task, rows, [[]] * len(rows), tok, 256)
    abstain = P.continuation_ids(tok, abstain_text)
    fed = []
    hook = model.get_input_embeddings().register_forward_hook(lambda _m, args, _o: fed.append(tuple(args[0].shape)))
    texts, lps = E.generate_shared(model, tok, prompts, "\n", 6, batch_size=8, abstain=abstain)
    hook.remove()
    ref_texts = E.generate(model, tok, prompts, "\n", 6, batch_size=5)
    ref_lps = E.loglikelihoods(model, tok, [(p, abstain) for p in prompts], batch_size=5)
    assert texts == ref_texts
    assert lps == pytest.approx(ref_lps, abs=1e-4)
    groups = E.prefix_groups(prompts, 8)
    assert [len(g.members) for g in groups] == [4, 4, 4] and all(g.prefix_len > 20 for g in groups)
    widest_suffix = max(len(p) - g.prefix_len for g in groups for p in (prompts[i] for i in g.members))
    suffix_width = widest_suffix + len(abstain) - 1  # the suffix pass also runs abstain[:-1]
    prefix_calls = [shape for shape in fed if shape[1] > suffix_width]
    assert sum(rows for rows, _ in prefix_calls) == len(groups)  # each shared prefix: once
    assert max(width for _, width in prefix_calls) == max(g.prefix_len for g in groups)
    assert len(prefix_calls) < len(groups), "prefixes of different groups share one forward pass"
    assert all(shape[1] <= suffix_width for shape in fed if shape not in prefix_calls)  # no call sees a whole prompt


@pytest.mark.parametrize("abstain_text", [" unanswerable", " there is no answer here"])
def test_batched_prefill_across_contexts_equals_hf_generate(tiny, abstain_text):
    """Questions that share no context (SQuAD dev: 1.3 per context) mixed with shared-context groups: prefixes of
    different lengths are prefilled together, left-padded, and still give HF generate's greedy answers and the
    separately scored abstention (fp32), for several batch sizes (packs of one row up to everything at once)."""
    _, tok, model = tiny
    task = get_task("squad_v2")
    rows = _squad_rows(12) + _shared_context_rows()[:6]
    rows[5] = {**rows[5], "context": rows[5]["context"] * 3}  # a much longer prefix in the same pack
    prompts = P.build_prompts(task, rows, [[]] * len(rows), tok, 256)
    abstain = P.continuation_ids(tok, abstain_text)
    ref_texts = E.generate(model, tok, prompts, "\n", 6, batch_size=1)
    ref_lps = E.loglikelihoods(model, tok, [(p, abstain) for p in prompts], batch_size=1)
    for batch_size in (1, 5, 32):
        fed = []
        hook = model.get_input_embeddings().register_forward_hook(
            lambda _m, args, _o: fed.append(tuple(args[0].shape)))  # noqa: B023 - used before the next loop
        texts, lps = E.generate_shared(model, tok, prompts, "\n", 6, batch_size=batch_size, abstain=abstain)
        hook.remove()
        assert texts == ref_texts, batch_size
        assert lps == pytest.approx(ref_lps, abs=1e-4), batch_size
        if batch_size > 1:  # whole lone prompts (but their last token) run several to a forward pass
            assert any(n > 1 and width > 40 for n, width in fed), fed
        assert sum(n * width for n, width in fed) < sum(len(p) for p in prompts) + len(prompts) * (len(abstain) + 6)


def test_packs_cover_every_prompt_once(tiny):
    _, tok, model = tiny
    task = get_task("squad_v2")
    rows = _squad_rows(12) + _shared_context_rows()
    prompts = P.build_prompts(task, rows, [[]] * len(rows), tok, 256)
    groups = E.prefix_groups(prompts, 5)
    packs, alone = E._packs(model, prompts, groups, 5, 6, [1, 2, 3])
    members = sorted(m for pack in packs for u in pack for m in u.members) + sorted(m for u in alone for m in u.members)
    assert sorted(members) == list(range(len(prompts)))
    assert all(sum(len(u.members) for u in pack) <= 5 for pack in packs)
    widths = [u.prefix_len for pack in packs for u in pack]
    assert widths == sorted(widths, reverse=True), "length-sorted: little padding in the prefix pass"


def test_no_answer_probability_keeps_full_precision(tiny):
    """Kept as log-probability and its exact exp(): rounding to 8 decimals would tie a pretrained model's
    1e-9-scale values and change the official best_* sweep (shown on crafted predictions)."""
    import math

    _, tok, model = tiny
    task = get_task("squad_v2")
    settings = E.EvalSettings(batch_size=32, max_prompt_tokens=768, max_new_tokens=4, num_fewshot=0, seed=1,
                              chat_template=False)
    predictions = E.predict(task, model, tok, _shared_context_rows(), [], settings)
    assert all(p["no_answer_prob"] == math.exp(p["no_answer_logprob"]) for p in predictions)
    crafted = [  # the answerable question is more confident than the unanswerable one, by 2e-9
        {"id": "b", "gold": [], "prediction": "y", "generated": " y", "no_answer_prob": 3e-9},
        {"id": "a", "gold": ["x"], "prediction": "x", "generated": " x", "no_answer_prob": 1e-9},
    ]
    rounded = [{**p, "no_answer_prob": round(p["no_answer_prob"], 8)} for p in crafted]
    assert score(task, crafted)["best_f1"] == 100.0  # threshold between the two: both right
    assert score(task, rounded)["best_f1"] < 100.0  # tied at 0: the sweep cannot separate them


# --------------------------------------------------------------------------- scoring attention, prefix groups
@pytest.mark.parametrize("q_len", [1, 7])
@pytest.mark.parametrize("softcap", [None, 30.0])
def test_packed_eager_attention_equals_transformers_eager(q_len, softcap):
    """Stacking the query heads that share a key/value head gives eager's output (prefill and decoding shapes,
    grouped-query heads, a padding mask, Gemma-2's soft-capping)."""
    from transformers.models.gemma3.modeling_gemma3 import eager_attention_forward

    from tuneval.scoring.attention import packed_eager_attention

    torch.manual_seed(0)
    module = torch.nn.Module().eval()
    module.head_dim, module.num_key_value_groups = 16, 3
    batch, kv_heads, kv_len = 2, 2, 9
    query = torch.randn(batch, 6, q_len, 16)
    key, value = torch.randn(batch, kv_heads, kv_len, 16), torch.randn(batch, kv_heads, kv_len, 16)
    mask = torch.zeros(batch, 1, q_len, kv_len)
    mask[0, :, :, :3] = torch.finfo(torch.float32).min  # row 0 is left-padded by 3
    mask[:, :, torch.arange(q_len)[:, None] < torch.arange(kv_len)[None, :] - (kv_len - q_len)] = -1e30  # causal
    want, _ = eager_attention_forward(module, query, key, value, mask, scaling=0.25, softcap=softcap)
    got, _ = packed_eager_attention(module, query, key, value, mask, scaling=0.25, softcap=softcap)
    assert got.shape == want.shape == (batch, q_len, 6, 16)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_scoring_runs_the_packed_attention_and_gives_hf_generates_answers(tiny):
    """predict() scores under packed_eager_attention on a CPU (seen in the model's config during the forward
    passes), restores the model's own kernel after, and still gives HF generate's greedy answers and the
    separately scored abstention probabilities (fp32)."""
    import math

    from tuneval.scoring.attention import NAME

    _, tok, model = tiny
    task = get_task("squad_v2")
    rows = _squad_rows(6) + _shared_context_rows()[:5]
    settings = E.EvalSettings(batch_size=4, max_prompt_tokens=256, max_new_tokens=6, num_fewshot=0, seed=1,
                              chat_template=False)
    own = model.config._attn_implementation
    seen = []
    hook = model.register_forward_pre_hook(lambda m, _args: seen.append(m.config._attn_implementation))
    predictions = E.predict(task, model, tok, rows, [], settings)
    hook.remove()
    assert set(seen) == {NAME} and model.config._attn_implementation == own
    prompts = P.build_prompts(task, rows, [[]] * len(rows), tok, 256)
    abstain = P.continuation_ids(tok, task.answer_prefix + task.abstain)
    assert [p["generated"] for p in predictions] == E.generate(model, tok, prompts, task.stop, 6, batch_size=1)
    ref = E.loglikelihoods(model, tok, [(p, abstain) for p in prompts], batch_size=1)
    assert [p["no_answer_logprob"] for p in predictions] == pytest.approx(ref, abs=1e-4)
    assert all(math.isfinite(p["no_answer_logprob"]) for p in predictions)


def test_prompts_sharing_only_a_title_are_not_grouped():
    """Same-article questions on different paragraphs share the title line only: grouping them would pad every
    suffix (a whole paragraph) to the longest; only the paragraph's own questions form a group."""
    title = list(range(100, 120))  # a 20-token title: above MIN_SHARED_TOKENS
    para_a, para_b = list(range(200, 280)), list(range(300, 380))
    prompts = [title + para_a + [1, 2, 3], title + para_a + [4, 5], title + para_b + [6, 7, 8]]
    groups = E.prefix_groups(prompts, 8)
    shared = [g for g in groups if g.prefix_len]
    assert [sorted(g.members) for g in shared] == [[0, 1]] and shared[0].prefix_len == 100
    assert [g.members for g in groups if not g.prefix_len] == [[2]]

