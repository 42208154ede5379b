"""train: completion-only fine-tuning of the base model on a task's train split."""

from tuneval.pipeline import train
from tuneval.stage import run_stage

if __name__ == "__main__":
    run_stage(train)
