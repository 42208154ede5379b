"""Models: where a model comes from (one resolved source), loading, GGUF conversion, the tiny builder and
parameter counts."""
