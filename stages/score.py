"""score: metrics of both phases from their predictions (seconds; a metric change never reruns a model)."""

from tuneval.scoring.metric_files import score_task
from tuneval.stage import run_stage

if __name__ == "__main__":
    run_stage(score_task)
