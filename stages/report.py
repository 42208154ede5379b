"""report: report/summary.md and summary.png, zero-shot vs fine-tuned for every task."""

from tuneval.report.study import report
from tuneval.stage import run_stage

if __name__ == "__main__":
    run_stage(report, needs_task=False)
