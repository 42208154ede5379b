"""publish: the folder a Hub push uploads (the LoRA adapter or the model, and its card); pushes only when asked."""

from tuneval.report.publish import publish
from tuneval.stage import run_stage

if __name__ == "__main__":
    run_stage(publish)
