"""split: the seeded 80/20 train/development split of a task's prepared train data, then the training draw."""

from tuneval.splitting import split
from tuneval.stage import run_stage

if __name__ == "__main__":
    run_stage(split)
