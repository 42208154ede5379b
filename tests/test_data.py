"""Raw data loading, row validation, normalization, the seeded 80/20 split (stratified by label, or by article and
stratified by abstentions), the seeded draws (data.seed) and what a split is made of."""

from __future__ import annotations

import copy
import dataclasses
import random
from collections import Counter

import pytest

from tuneval.config import load_params
from tuneval.data import composition, draw, load_raw, normalize, validate_rows
from tuneval.io import DataError
from tuneval.splitting import draw_training, length_signal, split_rows
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
    """The bundled sample (load_raw never caps: every cap is a later seeded draw)."""
    params = load_params(repo_root / "params.yaml")
    return dataclasses.replace(params, data=dataclasses.replace(params.data, source="sample"))


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


def squad_row(qid: str, title: str, answerable: bool = True, context: str = CONTEXT) -> dict:
    """A normalized SQuAD v2 row of article `title`, answerable (gold "the sun") or not."""
    answers = {"text": ["the sun"], "answer_start": [27]} if answerable else {"text": [], "answer_start": []}
    return {"id": qid, "title": title, "context": context, "question": f"question {qid}?", "answers": answers}


def test_grouped_split_by_hand():
    rows = [squad_row(f"{t}{i}", t) for t, n in (("A", 6), ("B", 2), ("C", 2)) for i in range(n)]
    train, test = split_rows(SQUAD, rows, 0.2, 1, "hand")
    test_titles = {r["title"] for r in test}
    assert test_titles and test_titles != {"A", "B", "C"}  # never every group
    assert len(test) >= 2
    assert {r["title"] for r in train}.isdisjoint(test_titles)


def test_grouped_split_single_title_raises():
    rows = [squad_row(str(i), "Only", answerable=i % 3 > 0) for i in range(10)]
    with pytest.raises(DataError, match="title") as excinfo:
        split_rows(SQUAD, rows, 0.2, 1, "one_article.jsonl")
    assert "one_article.jsonl" in str(excinfo.value)


# ------------------------------------------------------------------------------------------------ load_raw
@pytest.mark.parametrize(
    ("task", "split", "count"),
    [(SST2, "train", 5000), (SST2, "validation", 872), (SQUAD, "train", 1008), (SQUAD, "validation", 11873)],
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


def test_load_raw_sample_squad_composition(sample_params):
    """The rebuilt sample (data/make_sample.py): train 11 articles, its 348 unanswerable questions in two of them
    (Zelda and Spectre); dev the whole official dev set: 35 articles, every one holding both kinds."""
    train, _ = load_raw(SQUAD, "train", sample_params)
    assert len({r["title"] for r in train}) == 11
    unanswerable = [r for r in train if SQUAD.abstains(r)]
    assert len(unanswerable) == 348
    assert Counter(r["title"] for r in unanswerable) == {"Spectre_(2015_film)": 188,
                                                         "The_Legend_of_Zelda:_Twilight_Princess": 160}
    validation, _ = load_raw(SQUAD, "validation", sample_params)
    assert len({r["title"] for r in validation}) == 35
    assert sum(SQUAD.abstains(r) for r in validation) == 5945  # the official dev set's NoAns_total
    kinds = {(r["title"], SQUAD.abstains(r)) for r in validation}
    assert len(kinds) == 70  # every article holds both kinds


def test_load_raw_never_caps(sample_params):
    """data.max_examples is gone: the draws (train/test/validation_examples) come later, seeded."""
    assert not hasattr(sample_params.data, "max_examples")
    few = dataclasses.replace(sample_params, data=dataclasses.replace(
        sample_params.data, train_examples={"sst2": 7, "squad_v2": 7}, test_examples=7,
        validation_examples={"sst2": 7, "squad_v2": 7}))
    rows, _ = load_raw(SQUAD, "validation", few)
    assert len(rows) == 11873


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
    params = load_params(write_params(data={"source": "local", "local_dir": str(shared_data)}))
    rows, origin = load_raw(task, "validation", params)
    assert origin.startswith(str(shared_data))
    assert len(rows) == count
    assert len({r[task.id_field] for r in rows}) == count


# ------------------------------------------------------------------------- SQuAD v2: articles x abstentions
def test_grouped_split_stratifies_articles_by_abstentions():
    """Two articles hold unanswerable questions, three do not: for every seed one of each kind lands on each side
    (a stratum of >= 2 articles is never moved whole), and no article is on both sides."""
    kinds = {"A": True, "B": True, "C": False, "D": False, "E": False}
    rows = [squad_row(f"{t}{i}", t, answerable=not (flagged and i % 2)) for t, flagged in kinds.items()
            for i in range(6)]
    for seed in range(20):
        train, test = split_rows(SQUAD, rows, 0.2, seed, "hand")
        sides = [{r["title"] for r in side} for side in (train, test)]
        assert not sides[0] & sides[1]
        assert sorted(_ids(train) + _ids(test)) == sorted(_ids(rows))
        for side in sides:
            assert side & {"A", "B"} and side & {"C", "D", "E"}, (seed, sides)
        assert any(SQUAD.abstains(r) for r in train) and any(SQUAD.abstains(r) for r in test)


def test_grouped_split_refuses_abstentions_in_a_single_article():
    rows = [squad_row(f"{t}{i}", t, answerable=not (t == "Lonely" and i == 0)) for t in ("Lonely", "B", "C")
            for i in range(4)]
    with pytest.raises(DataError, match="unanswerable") as excinfo:
        split_rows(SQUAD, rows, 0.2, 1, "one_flagged.jsonl")
    message = str(excinfo.value)
    assert "one_flagged.jsonl" in message and "'Lonely'" in message and "both sides" in message


def _reserved_pool(sample_params, seed: int = 1) -> list[dict]:
    """The default protocol's training pool: 15 seeded articles of the official dev set (data.reserved_articles)."""
    from tuneval.data import reserve_articles

    rows, origin = load_raw(SQUAD, "validation", sample_params)
    reserved, _ = reserve_articles(SQUAD, normalize(SQUAD, rows), 15, seed, origin)
    return reserved


def test_squad_split_and_training_draw_over_seeds(sample_params):
    """Over data seeds 1..20 of the default protocol: the split keeps articles on one side; the draw of 400 (draw
    seed = data seed) holds the study's share overall and in every article, spans every training article with none
    above 15%, and passes the split stage's rule; a draw of 100 lies inside the draw of 400."""
    from tuneval.splitting import check_draw

    problems = []
    for seed in range(1, 21):
        train, test = split_rows(SQUAD, _reserved_pool(sample_params, seed), 0.2, seed, "pool")
        if {r["title"] for r in train} & {r["title"] for r in test}:
            problems.append((seed, "an article on both sides"))
        drawn = draw_training(SQUAD, train, 400, 0.334, seed, "pool")
        share = sum(SQUAD.abstains(r) for r in drawn) / len(drawn)
        per_article = Counter(r["title"] for r in drawn)
        if len(drawn) != 400 or abs(share - 0.334) > 0.02:
            problems.append((seed, f"a draw of {len(drawn)} with {share:.3f} unanswerable"))
        if len(per_article) != len({r["title"] for r in train}) or max(per_article.values()) > 0.15 * 400:
            problems.append((seed, f"articles {per_article}"))
        check_draw(SQUAD, drawn, sample_params.split, 0.334)
        if not set(_ids(draw_training(SQUAD, train, 100, 0.334, seed, "pool"))) <= set(_ids(drawn)):
            problems.append((seed, "draws are not nested"))
    assert problems == []


def test_the_bundled_train_slice_cannot_give_an_unconfounded_draw(squad_train):
    """The official protocol on the bundled train slice: unanswerable questions in 2 of 11 articles only, so a draw
    of 200 with the study's share in every article does not exist: refused, with the numbers."""
    train, _ = split_rows(SQUAD, squad_train, 0.2, 1, "train_partial")
    with pytest.raises(DataError, match=r"data.train_examples.squad_v2 = 200, but .* at most \d+ questions"):
        draw_training(SQUAD, train, 200, 0.334, 1, "train_partial")


# ------------------------------------------------------------------------------------------------ the draws
def test_draw_is_seeded_and_keeps_the_order():
    rows = [{"id": str(i)} for i in range(100)]
    first = draw(rows, 10, 1)
    assert len(first) == 10 and len(set(_ids(first))) == 10
    assert first == sorted(first, key=lambda r: int(r["id"]))  # the file's order
    assert all(r in rows for r in first)
    assert draw(rows, 10, 1) == first
    assert draw(rows, 10, 2) != first and draw(rows, 10, "1-test") != first
    assert draw(rows, 10, 1) != rows[:10]  # a random draw, not the head of the file


@pytest.mark.parametrize("n", [None, 100, 1000])
def test_draw_of_none_or_more_than_all_is_everything(n):
    rows = [{"id": str(i)} for i in range(100)]
    assert draw(rows, n, 1) == rows


def _squad_pool(articles: int, unanswerable: int, answerable: int) -> list[dict]:
    """`articles` articles, each with `unanswerable` + `answerable` questions, shuffled together."""
    kinds = [False] * unanswerable + [True] * answerable
    return [squad_row(f"T{t}q{i}", f"T{t}", answerable=kind) for t in range(articles)
            for i, kind in enumerate(random.Random(t).sample(kinds, len(kinds)))]


def test_squad_training_draw_is_nested_spread_and_seeded():
    pool = _squad_pool(10, 10, 20)
    drawn = draw_training(SQUAD, pool, 40, 0.25, 1, "pool")
    assert len(drawn) == 40 and sum(SQUAD.abstains(r) for r in drawn) == 10  # 4 per article: 1 unanswerable
    assert Counter(r["title"] for r in drawn) == {f"T{t}": 4 for t in range(10)}
    assert _ids(drawn) == [r["id"] for r in pool if r["id"] in set(_ids(drawn))]  # pool order
    assert draw_training(SQUAD, pool, 40, 0.25, 1, "pool") == drawn
    assert draw_training(SQUAD, pool, 40, 0.25, 2, "pool") != drawn
    assert set(_ids(draw_training(SQUAD, pool, 20, 0.25, 1, "pool"))) < set(_ids(drawn))  # nested
    everything = draw_training(SQUAD, pool, None, 0.25, 1, "pool")  # null: all that keep the share per article
    assert set(_ids(drawn)) < set(_ids(everything)) < set(_ids(pool))
    assert abs(sum(SQUAD.abstains(r) for r in everything) / len(everything) - 0.25) < 0.02


def test_squad_training_draw_too_large_names_the_numbers():
    with pytest.raises(DataError) as excinfo:  # 2 unanswerable per article at share 0.5: 4 per article, 20 in all
        draw_training(SQUAD, _squad_pool(5, 2, 20), 30, 0.5, 1, "data/split/squad_v2/pool")
    message = str(excinfo.value)
    assert "data/split/squad_v2/pool" in message and "data.train_examples.squad_v2 = 30" in message
    assert "at most 20 questions" in message and "50.0% unanswerable in every article" in message


def _rules(min_articles: int = 10, max_share: float = 0.15):
    from tuneval.config import SplitConfig

    return SplitConfig(test_size=0.2, min_train_articles=min_articles, max_article_share=max_share)


def test_split_refuses_a_draw_the_article_could_predict():
    """The rule the split stage applies: too few articles, one article too large, or an article of one kind only,
    each refused with the article and the shares."""
    from tuneval.splitting import check_draw

    pool = _squad_pool(12, 10, 20)
    check_draw(SQUAD, draw_training(SQUAD, pool, 48, 0.25, 1, "pool"), _rules(), 0.25)  # 4 per article: passes
    with pytest.raises(DataError, match=r"spans 12 articles .*min_train_articles = 13"):
        check_draw(SQUAD, draw_training(SQUAD, pool, 48, 0.25, 1, "pool"), _rules(min_articles=13), 0.25)
    lopsided = [r for r in pool if r["title"] == "T0"] + draw_training(SQUAD, pool[30:], 33, 0.25, 1, "pool")
    with pytest.raises(DataError, match=r"article 'T0' supplies 30 \(\d+\.\d%\), more than split.max_article_share"):
        check_draw(SQUAD, lopsided, _rules(), 0.25)
    one_kind = [r for r in pool if not SQUAD.abstains(r) or r["title"] != "T3"]
    drawn = [r for r in one_kind if r["title"] in {f"T{t}" for t in range(12)}][:0] or one_kind
    with pytest.raises(DataError, match=r"article 'T3' supplies 20 questions, all answerable"):
        check_draw(SQUAD, drawn, _rules(max_share=1.0), 0.25)


def test_split_refuses_sets_that_share_an_article():
    from tuneval.splitting import check_disjoint

    pool = _squad_pool(3, 1, 2)
    sides = {"training": pool[:3], "development": pool[3:6], "scored": pool[6:]}
    check_disjoint(SQUAD, sides)
    with pytest.raises(DataError, match=r"training and scored sets share 1 article"):
        check_disjoint(SQUAD, {**sides, "scored": pool[6:] + [squad_row("new", "T0")]})


def test_sst2_training_draw_size(sst2_train):
    train, _ = split_rows(SST2, sst2_train, 0.2, 1, "sst2/train")
    drawn = draw_training(SST2, train, 400, 0.334, 1, "sst2/train")  # the share is SQuAD's: ignored here
    assert len(drawn) == 400 and len(set(_ids(drawn))) == 400
    assert set(_ids(drawn)) <= set(_ids(train))
    assert _ids(drawn) == [r["id"] for r in train if r["id"] in set(_ids(drawn))]
    assert draw_training(SST2, train, 400, 0.334, 1, "sst2/train") == drawn
    assert draw_training(SST2, train, 400, 0.334, 2, "sst2/train") != drawn
    assert draw_training(SST2, train, None, 0.334, 1, "sst2/train") == train


# ------------------------------------------------------------------------------------------------ composition
def test_composition_by_hand():
    other = "A second paragraph of the article."
    rows = [squad_row("a", "Solar"), squad_row("b", "Solar", answerable=False),
            squad_row("c", "Solar", context=other), squad_row("d", "Wind", context="Wind turns turbines.")]
    assert composition(SQUAD, rows) == "2 articles, 3 contexts, 25.0% unanswerable"
    assert composition(SST2, sst2_rows(4)) == "50.0% negative, 50.0% positive"
    assert composition(SQUAD, []) == "empty"


# -------------------------------------------------------------------------------------- the prepare/split stages
def _study(params, **data):
    return dataclasses.replace(params, data=dataclasses.replace(params.data, source="sample", **data))


def test_split_stage_draws_with_data_seed_not_the_training_seed(params, tmp_path, monkeypatch, capsys):
    """prepare + split on the bundled SQuAD v2 sample: validation drawn to data.validation_examples, the training
    draw holds data.unanswerable_share, the test side is drawn to data.test_examples; the training seed (`seed`)
    changes none of it, data.seed does."""
    from tuneval import data, splitting
    from tuneval.io import read_jsonl as read

    monkeypatch.chdir(tmp_path)
    study = _study(params, seed=1, train_examples={"sst2": 400, "squad_v2": 400}, unanswerable_share=0.334,
                   test_examples=100, validation_examples={"sst2": None, "squad_v2": None})

    def run(p):
        data.prepare("squad_v2", p)
        splitting.split("squad_v2", p)
        return {name: read(tmp_path / "data" / sub / "squad_v2" / f"{split}.jsonl")
                for name, sub, split in (("validation", "prepared", "validation"), ("train", "split", "train"),
                                         ("test", "split", "test"))}

    files = run(study)
    printed = capsys.readouterr().out
    titles = {name: {r["title"] for r in rows} for name, rows in files.items()}
    assert len(titles["validation"]) == 20 and len(titles["train"] | titles["test"]) == 15  # reserved articles
    assert len(files["train"]) == 400 and abs(sum(SQUAD.abstains(r) for r in files["train"]) - 134) <= 3
    assert len(files["test"]) == 100
    assert not titles["train"] & titles["test"] and not (titles["train"] | titles["test"]) & titles["validation"]
    assert "data.seed 1" in printed and "% unanswerable" in printed and "articles" in printed
    assert run(dataclasses.replace(study, seed=7)) == files  # the training seed draws nothing
    redrawn = run(_study(study, draw_seed=2))  # the draw seed moves the training draw alone
    assert redrawn["train"] != files["train"]
    assert (redrawn["validation"], redrawn["test"]) == (files["validation"], files["test"])
    other = run(_study(study, seed=2))
    assert other["train"] != files["train"] and other["validation"] != files["validation"]
    fewer = run(_study(study, validation_examples={"sst2": None, "squad_v2": 50}))["validation"]
    assert len(fewer) == 50 and _ids(fewer) == [r["id"] for r in files["validation"] if r["id"] in set(_ids(fewer))]


@pytest.mark.parametrize(("data", "split", "message"), [
    ({"reserved_articles": {"sst2": None, "squad_v2": None}}, {},  # the official protocol on the bundled slice
     r"data.train_examples.squad_v2 = 200, but the train side of the split can give at most \d+ questions"),
    ({}, {"max_article_share": 0.05}, r"article '.+' supplies 17 \(8.5%\), more than split.max_article_share = 5%"),
    ({}, {"min_train_articles": 13}, r"spans 12 articles .*split.min_train_articles = 13"),
])
def test_the_split_stage_refuses_a_confounded_draw_and_writes_nothing(params, tmp_path, monkeypatch, data, split,
                                                                      message):
    """The stage itself, on the bundled sample: a draw the article could predict is refused with the numbers, and
    data/split/squad_v2 is not written."""
    from tuneval import data as data_stage
    from tuneval import splitting

    monkeypatch.chdir(tmp_path)
    study = _study(params, train_examples={"sst2": 400, "squad_v2": 200}, **data)
    study = dataclasses.replace(study, split=dataclasses.replace(study.split, **split))
    data_stage.prepare("squad_v2", study)
    with pytest.raises(DataError, match=message):
        splitting.split("squad_v2", study)
    assert not (tmp_path / "data" / "split" / "squad_v2").exists()


def test_length_signal_finds_a_length_shortcut_and_none_where_there_is_none():
    sst2 = get_task("sst2")
    long_positive = [{"idx": i, "sentence": "word " * (3 + 5 * (i % 2)), "label": i % 2} for i in range(40)]
    assert length_signal(sst2, long_positive) == {"sentence": 1.0}  # length alone gives the label away
    same_length = [{"idx": i, "sentence": f"sentence {i}", "label": i % 2} for i in range(40)]
    assert length_signal(sst2, same_length) == {"sentence": 0.5}
    assert length_signal(sst2, [r for r in same_length if r["label"] == 1]) == {}  # one class: nothing to separate
    rows = [dict(squad_row(f"q{i}", "Solar", answerable=i % 3 > 0), question="why " * (2 + (i % 3 == 0) * 4))
            for i in range(30)]
    signal = length_signal(SQUAD, rows)
    assert set(signal) == {"title", "context", "question"}  # the prompt's text fields
    assert signal["question"] == 1.0 and signal["title"] == signal["context"] == 0.5  # unanswerable ones longer
