"""params.yaml survives `dvc exp run -S`: DVC rewrites the file through its YAML round trip (hydra overrides, then
ruamel), and a user's first experiment must change only the line of the value it sets."""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("override", ["lr=3e-5", "seed=2", "epochs=3", "batch_size=16", "train.lora.r=16",
                                      "data.train_examples.squad_v2=100", "eval.limit=50", "model.dtype=float32"])
def test_dvc_set_param_changes_one_line(tmp_path, override):
    from dvc.utils.hydra import apply_overrides  # what `dvc exp run -S` calls on params.yaml

    path = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", path)
    before = path.read_text().splitlines()
    apply_overrides(str(path), [override])
    after = path.read_text().splitlines()
    changed = [line for line in difflib.unified_diff(before, after, lineterm="", n=0)
               if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert len(changed) == 2, f"{override} changed more than its own line:\n" + "\n".join(changed)
    key, value = override.split("=")
    assert changed[1].lstrip("+ ").startswith(f"{key.rsplit('.', 1)[-1]}: "), changed


def test_params_round_trip_keeps_values():
    """The DVC-stable form (block lists, empty = null) reads back as the intended values."""
    from tuneval.config import load_params

    params = load_params(REPO / "params.yaml")
    assert params.tasks == ["sst2", "squad_v2"]
    assert params.model.gguf_file is None and params.eval.limit is None and params.publish.repo_id is None
    assert params.eval.splits == ["validation"]
