"""base_model: build the tiny offline model (tokenizer trained on the train splits), or pin a hub model."""

from tuneval.pipeline import base_model
from tuneval.stage import run_stage

if __name__ == "__main__":
    run_stage(base_model, needs_task=False)
