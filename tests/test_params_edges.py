"""Every key of params.yaml walked through its edge values: empty, zero, negative, the wrong type, an empty string.

A value that cannot give a meaningful run must be refused by load-time validation (ConfigError naming the key),
before any stage does work. The table lists, per key, the edge values that ARE meaningful; every other edge value
of every key must be refused. A key added to params.yaml is walked automatically, and fails here until the table
says which of its edges are meaningful.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from tuneval.config import params_from_dict
from tuneval.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
RAW = yaml.safe_load((REPO / "params.yaml").read_text())
EDGES = {"empty list": [], "empty mapping": {}, "zero": 0, "negative": -1, "wrong type": None, "empty string": ""}
MEANINGFUL = {  # key -> its edge values that make a meaningful run (all others must be refused)
    "seed": {"zero"}, "data.seed": {"zero"}, "data.draw_seed": {"zero"},  # seeds: any value >= 0
    "data.unanswerable_share": {"zero"},  # train without abstentions
    "train.lora.dropout": {"zero"}, "train.warmup_steps": {"zero"}, "train.weight_decay": {"zero"},
    "eval.num_fewshot": {"zero"},  # zero-shot
}
WHOLE_MAPPINGS = ("data.files",)  # walked as one value: its own check names the task and split


def leaves(mapping: dict, prefix: str = ""):
    for key, value in mapping.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and path not in WHOLE_MAPPINGS:
            yield from leaves(value, f"{path}.")
        else:
            yield path


def with_value(key: str, value) -> dict:
    raw = copy.deepcopy(RAW)
    *parents, last = key.split(".")
    node = raw
    for part in parents:
        node = node[part]
    node[last] = value
    return raw


def edge_value(key: str, edge: str):
    """The edge value; "wrong type" is text where a number, flag, list or mapping belongs, a number where text
    belongs, and a list where an optional value (null by default) belongs."""
    if edge != "wrong type":
        return EDGES[edge]
    original = RAW
    for part in key.split("."):
        original = original[part]
    return 1.5 if isinstance(original, str) else [1] if original is None else "text"


CASES = [(key, edge) for key in leaves(RAW) for edge in EDGES]


def test_the_walk_covers_every_key():
    keys = set(leaves(RAW))
    assert {"lr", "tasks", "data.train_examples.squad_v2", "train.lora.r", "report.allow_mixed_routes"} <= keys
    assert len(keys) >= 60
    assert set(MEANINGFUL) <= keys, "the table names a key params.yaml no longer has"


@pytest.mark.parametrize(("key", "edge"), CASES, ids=[f"{k}={e}" for k, e in CASES])
def test_an_edge_value_is_refused_unless_meaningful(key, edge):
    raw = with_value(key, edge_value(key, edge))
    if edge in MEANINGFUL.get(key, set()):
        params_from_dict(raw)  # accepted
        return
    with pytest.raises(ConfigError) as excinfo:
        params_from_dict(raw)
    assert key.split(".")[0] in str(excinfo.value)  # the message names the key (or its block)


@pytest.mark.parametrize(("key", "value"), [("lr", float("inf")), ("split.test_size", 1.5),
                                            ("data.unanswerable_share", 1.0), ("split.max_article_share", 1.5),
                                            ("train.lora.dropout", 1.0), ("train.warmup_steps", 2.5)])
def test_out_of_range_floats_are_refused(key, value):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        params_from_dict(with_value(key, value))
