"""The checkpoint fingerprint (train/checkpoints.py): a changed base model invalidates resume, the same content
anywhere (another path, other mtimes: another machine) gives the same fingerprint, and a large weight file is
sampled, never read whole (it was ~1 GB of reading on every training run)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tuneval.config import load_params
from tuneval.train import checkpoints
from tuneval.train.checkpoints import fingerprint, prepare_checkpoints
from tuneval.train.job import TrainJob

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = 10 << 20  # float32 values: a 40 MiB model.safetensors, above checkpoints.WHOLE_FILE_LIMIT


def write_base(folder: Path, fill: float = 0.0, config: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config or {"model_type": "llama", "hidden_size": 32}))
    (folder / "tuneval_model.json").write_text(json.dumps({"kind": "local", "name": "x"}))
    weights = torch.full((WEIGHTS,), fill, dtype=torch.float32)
    weights[WEIGHTS // 2] += 1  # not a constant file
    save_file({"model.embed_tokens.weight": weights}, folder / "model.safetensors")
    return folder


def job_for(tmp_path: Path, base: Path) -> TrainJob:
    train = tmp_path / "train.jsonl"
    if not train.exists():
        train.write_text('{"id": "1", "sentence": "a film", "label": 1}\n')
    return TrainJob("sst2", base, train, tmp_path / "out", tmp_path / "live", tmp_path / "ckpt")


@pytest.fixture
def params():
    return load_params(REPO / "params.yaml")


def test_a_changed_base_model_invalidates_resume(tmp_path, params):
    base = write_base(tmp_path / "base")
    assert (base / "model.safetensors").stat().st_size > checkpoints.WHOLE_FILE_LIMIT, "the sampled path"
    job = job_for(tmp_path, base)
    stamp = fingerprint(params, job)
    assert prepare_checkpoints(job.checkpoint_dir, stamp) is False
    (job.checkpoint_dir / "checkpoint-2").mkdir()
    assert fingerprint(params, job) == stamp and prepare_checkpoints(job.checkpoint_dir, stamp) is True

    write_base(base, fill=0.5)  # other weights, same shapes: same size, same safetensors header
    retrained = fingerprint(params, job)
    assert retrained != stamp
    assert prepare_checkpoints(job.checkpoint_dir, retrained) is False
    assert not (job.checkpoint_dir / "checkpoint-2").exists(), "a checkpoint of another base model is not resumed"

    write_base(base, fill=0.5, config={"model_type": "llama", "hidden_size": 64})
    assert fingerprint(params, job) not in (stamp, retrained)


def test_a_changed_train_file_or_params_invalidates_resume(tmp_path, params):
    job = job_for(tmp_path, write_base(tmp_path / "base"))
    stamp = fingerprint(params, job)
    assert fingerprint(dataclasses.replace(params, lr=params.lr * 2), job) != stamp
    job.train_file.write_text(job.train_file.read_text().replace("a film", "a fine film"))
    assert fingerprint(params, job) != stamp


def test_the_same_content_elsewhere_with_other_mtimes_has_the_same_fingerprint(tmp_path, params):
    """What a worker machine computes from its own `dvc pull`: same bytes, another path, other timestamps."""
    base = write_base(tmp_path / "base")
    stamp = fingerprint(params, job_for(tmp_path, base))
    copy = shutil.copytree(base, tmp_path / "elsewhere" / "base", copy_function=shutil.copy)  # new mtimes
    os.utime(copy / "model.safetensors", (1, 1))
    assert fingerprint(params, job_for(tmp_path, copy)) == stamp


def test_a_large_weight_file_is_sampled_not_read_whole(tmp_path, params, monkeypatch):
    base = write_base(tmp_path / "base")
    size = (base / "model.safetensors").stat().st_size
    whole, sampled = [], []
    real_hash_whole, real_pread = checkpoints._hash_whole, os.pread
    monkeypatch.setattr(checkpoints, "_hash_whole", lambda path: (whole.append(path.name), real_hash_whole(path))[1])
    monkeypatch.setattr(os, "pread", lambda fd, n, offset: (sampled.append(n), real_pread(fd, n, offset))[1])
    fingerprint(params, job_for(tmp_path, base))
    assert "model.safetensors" not in whole and {"config.json", "train.jsonl"} <= set(whole)
    assert 0 < sum(sampled) <= checkpoints.SAMPLE_BLOCKS * checkpoints.SAMPLE_BYTES + (1 << 20) < size / 2
