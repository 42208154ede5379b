"""eval: predictions of the fine-tuned model (same engine and examples as zeroshot_eval)."""

from functools import partial

from tuneval.scoring.predict import predict_phase
from tuneval.stage import run_stage

if __name__ == "__main__":
    run_stage(partial(predict_phase, phase="finetuned"))
