"""tuneval: zero-shot vs fine-tuned causal LMs on SST-2 and SQuAD v2, as a reproducible DVC pipeline."""

__version__ = "0.1.0"
