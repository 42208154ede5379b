"""train: completion-only fine-tuning of the base model on a task's training draw."""

from tuneval.stage import run_stage
from tuneval.train.run import train

if __name__ == "__main__":
    run_stage(train)
