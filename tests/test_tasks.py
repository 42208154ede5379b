"""Tasks as data: the YAML definitions, prompts, training targets and answer extraction."""

from __future__ import annotations

import re

import pytest

from tuneval.errors import TaskError, TunevalError
from tuneval.tasks import TASK_NAMES, MetricSpec, Task, demonstration, get_task

SST2_ROW = {"id": "7", "sentence": "a gorgeous, witty film", "label": 1}
SQUAD_ANSWERABLE = {
    "id": "q1",
    "title": "Solar_energy",
    "context": "Solar power is energy from the sun.",
    "question": "Where does solar power come from?",
    "answers": {"text": ["the sun", "sun"], "answer_start": [27, 31]},
}
SQUAD_UNANSWERABLE = {**SQUAD_ANSWERABLE, "id": "q2", "answers": {"text": [], "answer_start": []}}


def test_task_names_are_the_yaml_files():
    assert TASK_NAMES == ("squad_v2", "sst2")


@pytest.mark.parametrize("name", ["sst2", "squad_v2"])
def test_get_task(name):
    task = get_task(name)
    assert isinstance(task, Task)
    assert task.name == name
    assert task.id_field in task.schema


def test_get_task_kinds():
    sst2, squad = get_task("sst2"), get_task("squad_v2")
    assert sst2.kind == "multiple_choice"
    assert sst2.stratify_by == "label" and sst2.group_by is None
    assert squad.kind == "generate"
    assert squad.group_by == "title"
    assert squad.stop == "\n" and squad.abstain == "unanswerable"


def test_unknown_task_lists_available():
    with pytest.raises(TaskError) as excinfo:
        get_task("imdb")
    assert isinstance(excinfo.value, TunevalError)  # a user error (one line), not a KeyError (a bug)
    message = str(excinfo.value)
    assert "'imdb'" in message
    assert "squad_v2, sst2" in message


def test_sst2_prompt_matches_lm_eval():
    task = get_task("sst2")
    assert task.format_prompt(SST2_ROW) == (
        "a gorgeous, witty film\nQuestion: Is this sentence positive or negative?\nAnswer:"
    )


def test_prompt_does_not_interpret_braces_in_values():
    row = {**SST2_ROW, "sentence": "a {sentence} of {0} braces"}
    assert get_task("sst2").format_prompt(row).startswith("a {sentence} of {0} braces\nQuestion:")


def test_squad_prompt():
    assert get_task("squad_v2").format_prompt(SQUAD_ANSWERABLE) == (
        "Title: Solar_energy\nBackground: Solar power is energy from the sun.\n"
        "Question: Where does solar power come from?\nAnswer:"
    )


@pytest.mark.parametrize(("label", "word"), [(0, " negative"), (1, " positive")])
def test_sst2_target_is_label_word(label, word):
    assert get_task("sst2").target({**SST2_ROW, "label": label}) == word


def test_squad_target_answerable_uses_first_answer():
    assert get_task("squad_v2").target(SQUAD_ANSWERABLE) == " the sun\n"


def test_squad_target_unanswerable():
    assert get_task("squad_v2").target(SQUAD_UNANSWERABLE) == " unanswerable\n"


def test_gold_answers():
    task = get_task("squad_v2")
    assert task.gold_answers(SQUAD_ANSWERABLE) == ["the sun", "sun"]
    assert task.gold_answers(SQUAD_UNANSWERABLE) == []


@pytest.mark.parametrize(
    ("generated", "answer"),
    [
        (" the sun\nQuestion: next", "the sun"),
        ("  the sun  ", "the sun"),
        (" unanswerable\n", ""),
        (" Unanswerable", ""),
        ("UNANSWERABLE\nmore text", ""),
        ("\nthe sun", ""),
        (" unanswerable because", "unanswerable because"),
    ],
)
def test_to_answer(generated, answer):
    assert get_task("squad_v2").to_answer(generated) == answer


def test_demonstration_drops_stop_string():
    squad = get_task("squad_v2")
    assert demonstration(squad, SQUAD_ANSWERABLE) == squad.format_prompt(SQUAD_ANSWERABLE) + " the sun"
    sst2 = get_task("sst2")
    assert demonstration(sst2, SST2_ROW) == sst2.format_prompt(SST2_ROW) + " positive"


# ------------------------------------------------------------------------------------- the study's task facts
def test_clusters_and_baselines():
    squad, sst2 = get_task("squad_v2"), get_task("sst2")
    assert list(squad.clusters.items()) == [("title", "article"), ("context", "context")]  # coarsest first
    assert sst2.clusters == {}  # independent sentences
    assert (sst2.baseline, squad.baseline) == ("majority_class", "always_abstain")


def test_abstains():
    squad = get_task("squad_v2")
    assert squad.abstains(SQUAD_UNANSWERABLE) and not squad.abstains(SQUAD_ANSWERABLE)
    assert not get_task("sst2").abstains(SST2_ROW)  # no abstain answer: never


def test_squad_headline_reports_the_answer_rate():
    metrics = get_task("squad_v2").metrics
    assert "answered" in metrics.headline
    assert metrics.headline.index("answered") == metrics.headline.index("NoAns_f1") + 1
    assert metrics.display_name("answered") == "Answered (%)"


@pytest.mark.parametrize(("task", "baseline", "words"), [("sst2", "coin_flip", "baseline = 'coin_flip'"),
                                                         ("sst2", "always_abstain", "needs an `abstain`")])
def test_bad_baseline_is_a_task_error(task, baseline, words):
    import dataclasses

    with pytest.raises(TaskError, match=re.escape(words)):
        dataclasses.replace(get_task(task), baseline=baseline)


def test_metric_spec_errors_are_task_errors():
    with pytest.raises(TaskError, match="metrics.scale = 'permille'"):
        MetricSpec(scale="permille", headline=["accuracy"])
    with pytest.raises(TaskError, match="not in metrics.headline") as excinfo:
        MetricSpec(scale="fraction", headline=["accuracy"], hub={"f1": {"type": "f1"}})
    assert isinstance(excinfo.value, TunevalError)
