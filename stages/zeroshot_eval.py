"""zeroshot_eval: score the base model before any fine-tuning (same engine and examples as eval)."""

from functools import partial

from tuneval.pipeline import evaluate_phase
from tuneval.stage import run_stage

if __name__ == "__main__":
    run_stage(partial(evaluate_phase, phase="zeroshot"))
