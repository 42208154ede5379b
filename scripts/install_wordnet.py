#!/usr/bin/env python3
"""Install WordNet for NLTK's METEOR, online or offline: `python scripts/install_wordnet.py [--offline]`.

It puts the WordNet 3.0 database where NLTK finds it (``<sys.prefix>/nltk_data`` by default, which NLTK searches
automatically). It first tries NLTK's own downloader; without internet it falls back to Debian's ``wordnet-base``
and ``wordnet-sense-index`` packages (fetched with ``apt-get download``, unpacked with ``dpkg-deb -x``, never
installed system-wide), copies their database files into ``<target>/corpora/wordnet/`` and writes the
``lexnames`` file NLTK needs, which Debian does not ship. scripts/setup.sh runs it.

This is a setup tool, not part of the library: tuneval itself only checks that WordNet loads
(``tuneval.scoring.wordnet.require_wordnet``), and that check's message names this script.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

from tuneval.scoring.wordnet import wordnet_available

DEBIAN_PACKAGES: tuple[str, ...] = ("wordnet-base", "wordnet-sense-index")
"""Debian packages carrying the WordNet 3.0 database files (data, index, exceptions, index.sense)."""

DEBIAN_DATA_DIR = Path("usr/share/wordnet")
DEBIAN_LICENSE = Path("usr/share/doc/wordnet-base/copyright")

# Files NLTK's WordNetCorpusReader opens (its ``_FILES``), all of which must exist after an install.
REQUIRED_FILES: tuple[str, ...] = (
    "cntlist.rev",
    "lexnames",
    "index.sense",
    "index.adj",
    "index.adv",
    "index.noun",
    "index.verb",
    "data.adj",
    "data.adv",
    "data.noun",
    "data.verb",
    "adj.exc",
    "adv.exc",
    "noun.exc",
    "verb.exc",
)

# The WordNet 3.0 lexicographer files (see the lexnames(5WN) man page), in file-number order, with the
# syntactic category number (1 noun, 2 verb, 3 adjective, 4 adverb).
LEXICOGRAPHER_FILES: tuple[tuple[str, int], ...] = (
    ("adj.all", 3),
    ("adj.pert", 3),
    ("adv.all", 4),
    ("noun.Tops", 1),
    ("noun.act", 1),
    ("noun.animal", 1),
    ("noun.artifact", 1),
    ("noun.attribute", 1),
    ("noun.body", 1),
    ("noun.cognition", 1),
    ("noun.communication", 1),
    ("noun.event", 1),
    ("noun.feeling", 1),
    ("noun.food", 1),
    ("noun.group", 1),
    ("noun.location", 1),
    ("noun.motive", 1),
    ("noun.object", 1),
    ("noun.person", 1),
    ("noun.phenomenon", 1),
    ("noun.plant", 1),
    ("noun.possession", 1),
    ("noun.process", 1),
    ("noun.quantity", 1),
    ("noun.relation", 1),
    ("noun.shape", 1),
    ("noun.state", 1),
    ("noun.substance", 1),
    ("noun.time", 1),
    ("verb.body", 2),
    ("verb.change", 2),
    ("verb.cognition", 2),
    ("verb.communication", 2),
    ("verb.competition", 2),
    ("verb.consumption", 2),
    ("verb.contact", 2),
    ("verb.creation", 2),
    ("verb.emotion", 2),
    ("verb.motion", 2),
    ("verb.perception", 2),
    ("verb.possession", 2),
    ("verb.social", 2),
    ("verb.stative", 2),
    ("verb.weather", 2),
    ("adj.ppl", 3),
)


class WordNetInstallError(RuntimeError):
    """Neither NLTK's downloader nor the Debian fallback could install WordNet."""


def default_target() -> Path:
    """``<sys.prefix>/nltk_data``: inside a virtualenv NLTK searches it without configuration."""
    return Path(sys.prefix) / "nltk_data"


def lexnames_text() -> str:
    """The ``lexnames`` file as NLTK parses it: ``NN<TAB>name<TAB>category`` per line, 45 lines."""
    rows = enumerate(LEXICOGRAPHER_FILES)
    return "".join(f"{number:02d}\t{name}\t{category}\n" for number, (name, category) in rows)


def _register_data_dir(target: Path) -> None:
    """Put ``target`` on ``nltk.data.path`` so NLTK (and its path sandbox) accepts files under it."""
    import nltk

    resolved = os.path.realpath(target)
    known = {os.path.realpath(str(p)) for p in nltk.data.path if isinstance(p, str)}
    if resolved not in known:
        nltk.data.path.append(resolved)


def _try_nltk_download(target: Path) -> bool:
    """Try NLTK's own downloader (needs internet); True when it reports success."""
    import nltk

    chatter = io.StringIO()  # NLTK prints its own errors; keep them out of the user's terminal
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(chatter):
            warnings.simplefilter("ignore")
            done = nltk.download(
                "wordnet", download_dir=str(target), quiet=True, raise_on_error=True, print_error_to=chatter
            )
            return bool(done)
    except Exception as error:  # noqa: BLE001 - any failure (offline, proxy, sandbox) means "use the fallback"
        reason = type(error).__name__
        print(f"nltk.download('wordnet') failed ({reason}); falling back to Debian packages", file=sys.stderr)
        return False


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing its output as text (never raises on a non-zero exit)."""
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)


def _require_tool(name: str) -> str:
    """Absolute path of an executable, or a clear WordNetInstallError."""
    found = shutil.which(name)
    if found is None:
        raise WordNetInstallError(
            f"`{name}` not found: the offline WordNet install needs a Debian/Ubuntu system with apt. "
            f"Elsewhere use: python -m nltk.downloader wordnet"
        )
    return found


def _download_debs(workdir: Path) -> list[Path]:
    """``apt-get download`` the WordNet packages into ``workdir`` (running ``apt-get update`` once as root
    when the package lists do not know them yet)."""
    apt_get = _require_tool("apt-get")
    result = _run([apt_get, "download", *DEBIAN_PACKAGES], workdir)
    if result.returncode != 0 and hasattr(os, "geteuid") and os.geteuid() == 0:
        _run([apt_get, "update"], workdir)
        result = _run([apt_get, "download", *DEBIAN_PACKAGES], workdir)
    debs = sorted(workdir.glob("*.deb"))
    if result.returncode != 0 or len(debs) < len(DEBIAN_PACKAGES):
        raise WordNetInstallError(
            f"`apt-get download {' '.join(DEBIAN_PACKAGES)}` failed (exit {result.returncode}); "
            f"try `apt-get update` first.\n{result.stderr.strip()}"
        )
    return debs


def _extract_debs(debs: list[Path], dest: Path) -> None:
    """Unpack each .deb's file tree into ``dest`` with ``dpkg-deb -x`` (nothing is installed)."""
    dpkg_deb = _require_tool("dpkg-deb")
    for deb in debs:
        result = _run([dpkg_deb, "-x", str(deb), str(dest)], dest)
        if result.returncode != 0:
            raise WordNetInstallError(f"dpkg-deb -x {deb.name} failed: {result.stderr.strip()}")


def assemble_corpus(debian_root: Path, corpus_dir: Path) -> None:
    """Copy the WordNet database from an unpacked Debian tree into an NLTK ``corpora/wordnet`` dir.

    Every regular file of ``usr/share/wordnet`` is copied (not linked) under its own name, which is the
    name NLTK expects (``data.noun``, ``index.sense``, ``noun.exc``, ...). ``lexnames`` is copied when the
    packages carry it and generated from :data:`LEXICOGRAPHER_FILES` otherwise; the Debian copyright file
    becomes ``LICENSE``.
    """
    source = debian_root / DEBIAN_DATA_DIR
    if not source.is_dir():
        raise WordNetInstallError(f"the Debian packages did not contain {DEBIAN_DATA_DIR}")
    corpus_dir.mkdir(parents=True, exist_ok=True)
    for item in sorted(source.iterdir()):
        if item.is_file():
            shutil.copyfile(item, corpus_dir / item.name)
    lexnames = corpus_dir / "lexnames"
    if not lexnames.exists():
        lexnames.write_text(lexnames_text(), encoding="ascii")
    license_file = debian_root / DEBIAN_LICENSE
    if license_file.is_file():
        shutil.copyfile(license_file, corpus_dir / "LICENSE")
    missing = [name for name in REQUIRED_FILES if not (corpus_dir / name).is_file()]
    if missing:
        raise WordNetInstallError(f"the Debian packages lack WordNet files NLTK needs: {', '.join(missing)}")


def _verify_corpus(corpus_dir: Path) -> None:
    """Parse ``corpus_dir`` with NLTK's WordNet reader and look up "dog" (raises on any problem).

    The stock reader also maps its version onto the corpus registered as "wordnet", which does not exist
    yet while the corpus is being built, so that one step (``map_wn``) is skipped here.
    """
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class _UnmappedReader(WordNetCorpusReader):
        def map_wn(self, version: str = "wordnet") -> None:
            return None

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "multilingual functions not available": no OMW, as intended
        reader = _UnmappedReader(str(corpus_dir), None)
        if not reader.synsets("dog"):
            raise WordNetInstallError(f"the WordNet built in {corpus_dir} does not know the word 'dog'")


def _move_into_place(built: Path, final: Path) -> None:
    """Rename ``built`` to ``final``; an existing (broken) ``final`` is set aside first, then removed."""
    if final.exists():
        stale = final.with_name(f".{final.name}-stale-{os.getpid()}")
        os.replace(final, stale)
        os.replace(built, final)
        shutil.rmtree(stale, ignore_errors=True)
    else:
        os.replace(built, final)


def install_from_debian(target: Path) -> Path:
    """Build ``<target>/corpora/wordnet`` from Debian's WordNet packages; returns that directory.

    The corpus is assembled and checked in a temporary directory next to its final place and then renamed
    into it, so an interrupted install leaves no half-written corpus where NLTK looks.
    """
    corpora = target / "corpora"
    corpora.mkdir(parents=True, exist_ok=True)
    _register_data_dir(target)
    final = corpora / "wordnet"
    with tempfile.TemporaryDirectory(prefix=".wordnet-build-", dir=corpora) as scratch:
        scratch_dir = Path(scratch)
        downloads = scratch_dir / "debs"
        unpacked = scratch_dir / "root"
        built = scratch_dir / "wordnet"
        downloads.mkdir()
        unpacked.mkdir()
        _extract_debs(_download_debs(downloads), unpacked)
        assemble_corpus(unpacked, built)
        _verify_corpus(built)
        _move_into_place(built, final)
    return final


def install_wordnet(target: Path | None = None, *, try_download: bool = True) -> Path:
    """Make WordNet loadable by NLTK; returns where NLTK finds the corpus.

    ``target`` is registered on ``nltk.data.path`` for this process. Does nothing more when WordNet
    already loads. Otherwise tries ``nltk.download`` (online) unless
    ``try_download`` is False, then falls back to :func:`install_from_debian`.
    """
    target = Path(target) if target is not None else default_target()
    _register_data_dir(target)
    if wordnet_available():
        return _located_wordnet() or target
    target.mkdir(parents=True, exist_ok=True)
    if try_download and _try_nltk_download(target) and wordnet_available():
        return _located_wordnet() or target
    installed = install_from_debian(target)
    if not wordnet_available():
        raise WordNetInstallError(f"WordNet was written to {installed} but NLTK still cannot load it")
    return installed


def _located_wordnet() -> Path | None:
    """Where NLTK finds its WordNet corpus (directory or zip), if anywhere."""
    import nltk

    for resource in ("corpora/wordnet", "corpora/wordnet.zip"):
        try:
            return Path(str(nltk.data.find(resource)))
        except LookupError:
            continue
    return None


def main(argv: list[str] | None = None) -> int:
    """Command line: install WordNet for NLTK and print where it is."""
    parser = argparse.ArgumentParser(prog="python scripts/install_wordnet.py", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--target", type=Path, default=None, help="NLTK data dir (default: <sys.prefix>/nltk_data)"
    )
    parser.add_argument("--offline", action="store_true", help="skip nltk.download, go straight to apt")
    args = parser.parse_args(argv)
    try:
        location = install_wordnet(args.target, try_download=not args.offline)
    except WordNetInstallError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"WordNet available for NLTK at {location}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
