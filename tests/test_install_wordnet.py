"""scripts/install_wordnet.py, the offline-capable WordNet installer (a setup tool, not part of the library):
the pieces that need neither apt nor NLTK's loader, and the script's command line."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from repo_helpers import REPO, env

SCRIPT = REPO / "scripts" / "install_wordnet.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("install_wordnet", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


installer = _load_script()


def test_lexnames_has_the_format_nltk_parses() -> None:
    lines = installer.lexnames_text().splitlines()
    assert len(lines) == 45
    for number, line in enumerate(lines):
        index, name, category = line.split()  # NLTK: `index, lexname, _ = line.split()`
        assert int(index) == number and category in {"1", "2", "3", "4"}
    assert lines[0] == "00\tadj.all\t3" and lines[3] == "03\tnoun.Tops\t1" and lines[44] == "44\tadj.ppl\t3"


def test_assemble_corpus_from_an_unpacked_debian_tree(tmp_path: Path) -> None:
    source = tmp_path / "root" / "usr" / "share" / "wordnet"
    source.mkdir(parents=True)
    for name in installer.REQUIRED_FILES:
        if name != "lexnames":  # the Debian packages do not ship it
            (source / name).write_text(f"{name}\n")
    (source / "sents.vrb").write_text("extra\n")
    licence = tmp_path / "root" / "usr" / "share" / "doc" / "wordnet-base" / "copyright"
    licence.parent.mkdir(parents=True)
    licence.write_text("WordNet 3.0 license\n")

    corpus = tmp_path / "out" / "wordnet"
    installer.assemble_corpus(tmp_path / "root", corpus)
    assert (corpus / "data.noun").read_text() == "data.noun\n"
    assert not (corpus / "data.noun").is_symlink()
    assert (corpus / "lexnames").read_text() == installer.lexnames_text()
    assert (corpus / "LICENSE").read_text() == "WordNet 3.0 license\n"
    assert (corpus / "sents.vrb").exists()

    (source / "index.sense").unlink()
    with pytest.raises(installer.WordNetInstallError, match="index.sense"):
        installer.assemble_corpus(tmp_path / "root", tmp_path / "out2" / "wordnet")


def test_script_runs_as_setup_sh_calls_it() -> None:
    """`python scripts/install_wordnet.py` from the repository root: its imports resolve, --help names it."""
    proc = subprocess.run([sys.executable, str(SCRIPT), "--help"], cwd=REPO, env=env(), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: python scripts/install_wordnet.py") and "--offline" in proc.stdout
    assert "python scripts/install_wordnet.py" in (REPO / "scripts" / "setup.sh").read_text()


def test_library_hint_names_the_script() -> None:
    from tuneval.scoring.wordnet import INSTALL_HINT

    assert "python scripts/install_wordnet.py" in INSTALL_HINT and "tuneval.scoring.wordnet" not in INSTALL_HINT
    assert SCRIPT.is_file()
