"""count_params: total, trainable and embedding parameters of the base and fine-tuned model."""

from tuneval.models.counting import count_params
from tuneval.stage import run_stage

if __name__ == "__main__":
    run_stage(count_params)
