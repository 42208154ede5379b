"""eval: score the fine-tuned model (same engine and examples as zeroshot_eval)."""

from functools import partial

from tuneval.pipeline import evaluate_phase
from tuneval.stage import run_stage

if __name__ == "__main__":
    run_stage(partial(evaluate_phase, phase="finetuned"))
