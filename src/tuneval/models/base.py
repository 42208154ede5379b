"""The base_model stage: models/base from model.name (a tiny model built here, a GGUF converted once, or the record
of a hub or local model). The resolved source (models/source.py) is recorded in every case."""

from __future__ import annotations

import time

from tuneval import paths
from tuneval.config import Params
from tuneval.io import atomic_path, read_jsonl
from tuneval.usage import peak_memory_mb


def base_model(params: Params) -> None:
    """Write models/base atomically: a failure leaves the previous models/base as it was."""
    from tuneval.models import gguf
    from tuneval.models.loading import check_hub_model
    from tuneval.models.source import resolve_source, write_record
    from tuneval.models.tiny import build_tiny_model
    from tuneval.tasks import demonstration, get_task

    source = resolve_source(params.model)
    located = gguf.locate(params.model) if source.is_gguf else None  # checked before anything is written
    if source.kind in ("hub", "local"):
        check_hub_model(params.model)
    with atomic_path(paths.BASE_MODEL) as out:
        out.mkdir()
        if source.kind == "tiny":  # its tokenizer learns from the prepared train texts (never the scored ones)
            texts = [demonstration(get_task(t), row) for t in params.tasks
                     for row in read_jsonl(paths.prepared(t, "train"))]
            build_tiny_model(params.model, texts, params.data.seed, out)
            print(f"built {params.model.name} from {len(texts):,} train texts into {paths.BASE_MODEL}")
        elif located is not None:
            start = time.perf_counter()
            gguf.convert(located, out)
            print(f"converted {located.file} (sha256 {located.sha256[:12]}...) into {paths.BASE_MODEL} in "
                  f"{time.perf_counter() - start:.0f}s, peak memory {peak_memory_mb():,.0f} MiB")
        else:
            print(f"{paths.BASE_MODEL} points at {params.model.name}@{params.model.revision}")
        write_record(source, out)
