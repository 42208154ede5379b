"""The tiny offline models (tiny-llama, tiny-gemma2): a BPE tokenizer trained on the task texts and a
randomly initialised Llama or Gemma-2 of a few hundred thousand parameters. Tests and CI run the whole
pipeline on them in seconds; they learn the tasks' formats, not the tasks."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch

from tuneval.config import TINY_MODELS, ModelConfig, TinyModelConfig

SPECIAL_TOKENS = {"pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>"}


def train_tokenizer(texts: Iterable[str], vocab_size: int):
    """Byte-level BPE trained on `texts` (deterministic for the same texts), with <s> prepended like Llama-3."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    bos = SPECIAL_TOKENS["bos_token"]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))]
    )
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=1_000_000, **SPECIAL_TOKENS)


def tiny_config(architecture: str, tiny: TinyModelConfig, tokenizer):
    """A Llama (or Gemma-2) config of the tiny shape, wired to the tokenizer's special ids."""
    from transformers import Gemma2Config, LlamaConfig

    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=tiny.hidden_size,
        num_hidden_layers=tiny.num_layers,
        num_attention_heads=tiny.num_heads,
        num_key_value_heads=tiny.num_kv_heads,
        intermediate_size=tiny.intermediate_size,
        max_position_embeddings=tiny.max_position_embeddings,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    if architecture == "gemma2":
        head_dim = tiny.hidden_size // tiny.num_heads
        return Gemma2Config(head_dim=head_dim, query_pre_attn_scalar=head_dim, sliding_window=256, **common)
    return LlamaConfig(**common)


def build_tiny_model(model_cfg: ModelConfig, texts: Iterable[str], seed: int, out_dir: Path) -> None:
    """Train the tokenizer, initialise the model with `seed`, save both as an HF model directory."""
    from transformers import AutoModelForCausalLM

    architecture = TINY_MODELS[model_cfg.name]
    tokenizer = train_tokenizer(texts, model_cfg.tiny.vocab_size)
    config = tiny_config(architecture, model_cfg.tiny, tokenizer)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
