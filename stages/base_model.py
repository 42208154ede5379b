"""base_model: models/base from model.name: a tiny model built here, a GGUF converted once, or a pinned hub model."""

from tuneval.models.base import base_model
from tuneval.stage import run_stage

if __name__ == "__main__":
    run_stage(base_model, needs_task=False)
