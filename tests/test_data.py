"""Raw data loading, row validation, normalization and the seeded 80/20 split (stratified or grouped)."""

from __future__ import annotations

import copy
import dataclasses
from collections import Counter

import pytest

from tuneval.config import load_params
from tuneval.data import load_raw, normalize, split_rows, validate_rows
from tuneval.io import DataError
from tuneval.tasks import get_task

SST2 = get_task("sst2")
SQUAD = get_task("squad_v2")
CONTEXT = "Solar power is energy from the sun. Panels convert it to electricity."


def sst2_rows(n=4):
    return [{"idx": i, "sentence": f"sentence {i}", "label": i % 2} for i in range(n)]


def squad_rows():
    return [
        {"id": "a1", "title": "Solar", "context": CONTEXT, "question": "From where?",
         "answers": {"text": ["the sun"], "answer_start": [27]}},
        {"id": "a2", "title": "Solar", "context": CONTEXT, "question": "Who is the king?",
         "answers": {"text": [], "answer_start": []}},
        {"id": "a3", "title": "Solar", "context": CONTEXT, "question": "What do panels make?",
         "answers": {"text": ["electricity", "electricity"], "answer_start": [57, 57]}},
    ]


def validation_error(task, rows, origin="data/x.jsonl", labelled=True) -> str:
    with pytest.raises(DataError) as excinfo:
        validate_rows(task, rows, origin, labelled=labelled)
    return str(excinfo.value)


# ------------------------------------------------------------------------------------------ validate_rows
def test_fixture_offsets_are_right():
    for row in squad_rows():
        for text, start in zip(row["answers"]["text"], row["answers"]["answer_start"], strict=True):
            assert CONTEXT[start : start + len(text)] == text


def test_valid_rows_pass():
    validate_rows(SST2, sst2_rows(), "sst2.jsonl", labelled=True)
    validate_rows(SQUAD, squad_rows(), "squad.jsonl", labelled=True)


def test_missing_column():
    rows = sst2_rows()
    del rows[2]["sentence"]
    message = validation_error(SST2, rows)
    assert "data/x.jsonl: row 3" in message
    assert "missing column 'sentence'" in message


def test_wrong_type():
    rows = sst2_rows()
    rows[1]["label"] = "1"
    message = validation_error(SST2, rows)
    assert "data/x.jsonl: row 2" in message
    assert "'label'" in message and "expected int" in message and "str" in message


def test_bool_is_not_an_int_label():
    rows = sst2_rows()
    rows[0]["label"] = True
    assert "row 1" in validation_error(SST2, rows)


@pytest.mark.parametrize("label", [2, -1])
def test_label_outside_labels(label):
    rows = sst2_rows()
    rows[3]["label"] = label
    message = validation_error(SST2, rows)
    assert "data/x.jsonl: row 4" in message
    assert f"label = {label}" in message
    assert "[0, 1]" in message


def test_unlabelled_split_accepts_any_label():
    rows = sst2_rows()
    for row in rows:
        row["label"] = -1  # the GLUE test split
    validate_rows(SST2, rows, "test.jsonl", labelled=False)


def test_answer_start_not_pointing_at_text():
    rows = squad_rows()
    rows[2]["answers"]["answer_start"] = [57, 58]
    message = validation_error(SQUAD, rows, origin="squad.jsonl.gz")
    assert "squad.jsonl.gz: row 3" in message
    assert "'electricity'" in message and "answer_start 58" in message


def test_answer_lengths_mismatch():
    rows = squad_rows()
    rows[0]["answers"]["answer_start"] = [27, 27]
    message = validation_error(SQUAD, rows)
    assert "data/x.jsonl: row 1" in message
    assert "1 entries" in message and "has 2" in message


def test_answers_wrong_inner_type():
    rows = squad_rows()
    rows[0]["answers"]["answer_start"] = ["27"]
    message = validation_error(SQUAD, rows)
    assert "row 1" in message and "answers" in message and "list[int]" in message


def test_answers_missing_key():
    rows = squad_rows()
    del rows[1]["answers"]["answer_start"]
    message = validation_error(SQUAD, rows)
    assert "row 2" in message and "missing key 'answer_start'" in message


@pytest.mark.parametrize(("task", "rows", "field"), [(SST2, sst2_rows(), "idx"), (SQUAD, squad_rows(), "id")])
def test_duplicate_ids(task, rows, field):
    rows = copy.deepcopy(rows)
    rows.append(copy.deepcopy(rows[0]))
    message = validation_error(task, rows)
    assert f"data/x.jsonl: row {len(rows)}" in message
    assert f"duplicate {field}" in message
    assert "first seen in row 1" in message


# ------------------------------------------------------------------------------------------------ normalize
def test_normalize_adds_string_id():
    rows = [{**r, "extra": "dropped"} for r in sst2_rows(2)]
    out = normalize(SST2, rows)
    assert out == [
        {"id": "0", "idx": 0, "sentence": "sentence 0", "label": 0},
        {"id": "1", "idx": 1, "sentence": "sentence 1", "label": 1},
    ]


def test_normalize_squad_keeps_schema_columns():
    out = normalize(SQUAD, squad_rows())
    assert [r["id"] for r in out] == ["a1", "a2", "a3"]
    assert set(out[0]) == set(SQUAD.schema)
    assert out[0]["answers"] == {"text": ["the sun"], "answer_start": [27]}


# --------------------------------------------------------------------------------------------------- split
@pytest.fixture(scope="module")
def sample_params(repo_root):
    """The bundled sample, uncapped (the default study caps it with data.max_examples)."""
    params = load_params(repo_root / "params.yaml")
    return dataclasses.replace(params, data=dataclasses.replace(params.data, source="sample", max_examples=None))


@pytest.fixture(scope="module")
def sst2_train(sample_params):
    rows, _ = load_raw(SST2, "train", sample_params)
    return normalize(SST2, rows)


@pytest.fixture(scope="module")
def squad_train(sample_params):
    rows, _ = load_raw(SQUAD, "train", sample_params)
    return normalize(SQUAD, rows)


def _ids(rows):
    return [r["id"] for r in rows]


def test_stratified_split_keeps_label_proportions(sst2_train):
    train, test = split_rows(SST2, sst2_train, 0.2, 1, "sst2/train")
    assert len(test) == 1000 and len(train) == 4000
    assert sorted(_ids(train) + _ids(test)) == sorted(_ids(sst2_train))
    assert not set(_ids(train)) & set(_ids(test))
    total = Counter(r["label"] for r in sst2_train)
    in_test = Counter(r["label"] for r in test)
    for label, count in total.items():
        assert abs(in_test[label] - 0.2 * count) <= 1, (label, in_test[label], count)


def test_stratified_split_is_seeded(sst2_train):
    _, first = split_rows(SST2, sst2_train, 0.2, 1, "sst2/train")
    _, again = split_rows(SST2, sst2_train, 0.2, 1, "sst2/train")
    _, other = split_rows(SST2, sst2_train, 0.2, 2, "sst2/train")
    assert _ids(first) == _ids(again)
    assert set(_ids(first)) != set(_ids(other))


@pytest.mark.parametrize(
    "labels",
    [
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],  # one-sided
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 1],  # one row of a label
        [0, 0, 1, 1],  # a 20% test split of 4 rows cannot hold both labels
    ],
)
def test_stratified_split_too_small_or_one_sided(labels):
    rows = [{"id": str(i), "label": label} for i, label in enumerate(labels)]
    with pytest.raises(DataError, match="stratify") as excinfo:
        split_rows(SST2, rows, 0.2, 1, "tiny.jsonl")
    assert "tiny.jsonl" in str(excinfo.value)


def test_stratified_split_train_side_too_small_is_a_data_error():
    rows = [{"id": str(i), "label": label} for i, label in enumerate([0, 0, 1, 1])]
    with pytest.raises(DataError, match="stratify"):
        split_rows(SST2, rows, 0.7, 1, "tiny.jsonl")  # test = ceil(2.8) = 3 rows, train = 1 row


def test_grouped_split_keeps_titles_on_one_side(squad_train):
    train, test = split_rows(SQUAD, squad_train, 0.2, 1, "squad/train")
    assert train and test
    assert sorted(_ids(train) + _ids(test)) == sorted(_ids(squad_train))
    assert not {r["title"] for r in train} & {r["title"] for r in test}
    assert len(test) >= 0.2 * len(squad_train)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_grouped_split_is_seeded(squad_train, seed):
    _, first = split_rows(SQUAD, squad_train, 0.2, seed, "squad/train")
    _, again = split_rows(SQUAD, squad_train, 0.2, seed, "squad/train")
    assert _ids(first) == _ids(again)
    assert len(first) >= 0.2 * len(squad_train)


def test_grouped_split_differs_between_seeds(squad_train):
    titles = [{r["title"] for r in split_rows(SQUAD, squad_train, 0.2, s, "x")[1]} for s in range(4)]
    assert len({frozenset(t) for t in titles}) > 1


def test_grouped_split_by_hand():
    rows = [{"id": f"{t}{i}", "title": t} for t, n in (("A", 6), ("B", 2), ("C", 2)) for i in range(n)]
    train, test = split_rows(SQUAD, rows, 0.2, 1, "hand")
    test_titles = {r["title"] for r in test}
    assert test_titles and test_titles != {"A", "B", "C"}  # never every group
    assert len(test) >= 2
    assert {r["title"] for r in train}.isdisjoint(test_titles)


def test_grouped_split_single_title_raises():
    rows = [{"id": str(i), "title": "Only"} for i in range(10)]
    with pytest.raises(DataError, match="title") as excinfo:
        split_rows(SQUAD, rows, 0.2, 1, "one_article.jsonl")
    assert "one_article.jsonl" in str(excinfo.value)


# ------------------------------------------------------------------------------------------------ load_raw
@pytest.mark.parametrize(
    ("task", "split", "count"),
    [(SST2, "train", 5000), (SST2, "validation", 872), (SQUAD, "train", 610), (SQUAD, "validation", 560)],
)
def test_load_raw_sample_counts(sample_params, repo_root, task, split, count):
    assert sample_params.data.source == "sample"
    rows, origin = load_raw(task, split, sample_params)
    assert len(rows) == count
    assert origin.startswith(str(repo_root / "data" / "sample"))
    validate_rows(task, rows, origin, labelled=True)


def test_load_raw_sample_sst2_validation_balance(sample_params):
    rows, _ = load_raw(SST2, "validation", sample_params)
    assert Counter(r["label"] for r in rows) == {1: 444, 0: 428}


def test_load_raw_max_examples(sample_params):
    capped = dataclasses.replace(sample_params, data=dataclasses.replace(sample_params.data, max_examples=7))
    rows, _ = load_raw(SQUAD, "validation", capped)
    assert len(rows) == 7


def test_load_raw_local_dir_missing_file(write_params, tmp_path):
    params = load_params(write_params(data={"source": "local", "local_dir": str(tmp_path / "nowhere")}))
    with pytest.raises(DataError, match="not found") as excinfo:
        load_raw(SST2, "train", params)
    assert str(tmp_path / "nowhere" / "sst2" / "train.jsonl") in str(excinfo.value)


def test_load_raw_local_validates(write_params, tmp_path):
    (tmp_path / "sst2").mkdir()
    (tmp_path / "sst2" / "validation.jsonl").write_text(
        '{"idx": 0, "sentence": "fine", "label": 1}\n{"idx": 1, "sentence": "bad", "label": 7}\n'
    )
    params = load_params(write_params(data={"source": "local", "local_dir": str(tmp_path)}))
    with pytest.raises(DataError, match="row 2"):
        load_raw(SST2, "validation", params)


@pytest.mark.parametrize(("task", "count"), [(SST2, 872), (SQUAD, 11873)])
def test_load_raw_local_shared_validation(write_params, shared_data, task, count):
    params = load_params(write_params(data={"source": "local", "local_dir": str(shared_data), "max_examples": None}))
    rows, origin = load_raw(task, "validation", params)
    assert origin.startswith(str(shared_data))
    assert len(rows) == count
    assert len({r[task.id_field] for r in rows}) == count
