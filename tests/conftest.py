"""Shared fixtures: the repository root, the real params.yaml, modified copies of it, ../shared/data, and
WordNet (METEOR) being installed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from repo_helpers import merge

from tuneval.config import load_params


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
        path.write_text(yaml.safe_dump(merge(raw, overrides), sort_keys=False))
        return path

    return write


@pytest.fixture(scope="session")
def shared_data(repo_root) -> Path:
    path = repo_root.parent / "shared" / "data"
    if not path.is_dir():
        pytest.skip("../shared/data not present")
    return path


@pytest.fixture(scope="session")
def wordnet_ready() -> None:
    """Skip a test that computes METEOR where WordNet is not installed for NLTK."""
    from tuneval.scoring import wordnet as wordnet_support

    if not wordnet_support.wordnet_available():
        pytest.skip("WordNet is not installed for NLTK (METEOR); run `python scripts/install_wordnet.py`")
