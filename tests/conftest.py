"""Shared fixtures: the repository root, the real params.yaml, modified copies of it, and ../shared/data."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from tuneval.config import load_params


def deep_merge(base: dict, overrides: dict) -> dict:
    """A copy of `base` with `overrides` merged in: nested mappings merge key by key, others replace."""
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


@pytest.fixture
def params(repo_root):
    return load_params(repo_root / "params.yaml")


@pytest.fixture
def write_params(tmp_path, repo_root):
    """Callable: write_params(**overrides) -> path of a params.yaml copy in tmp_path, overrides merged."""
    raw = yaml.safe_load((repo_root / "params.yaml").read_text())
    counter = iter(range(1_000_000))

    def write(**overrides) -> Path:
        path = tmp_path / f"params_{next(counter)}.yaml"
        path.write_text(yaml.safe_dump(deep_merge(raw, overrides), sort_keys=False))
        return path

    return write


@pytest.fixture(scope="session")
def shared_data(repo_root) -> Path:
    path = repo_root.parent / "shared" / "data"
    if not path.is_dir():
        pytest.skip("../shared/data not present")
    return path
