"""prepare: raw task data (bundled sample, local JSONL or the hub) -> validated, normalized JSONL."""

from tuneval.data import prepare
from tuneval.stage import run_stage

if __name__ == "__main__":
    run_stage(prepare)
