"""split: the seeded 80/20 train/test split of a task's prepared train data."""

from tuneval.pipeline import split
from tuneval.stage import run_stage

if __name__ == "__main__":
    run_stage(split)
