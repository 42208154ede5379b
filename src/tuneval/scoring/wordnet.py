"""WordNet for NLTK's METEOR: a loud availability check (the installer is scripts/install_wordnet.py).

METEOR (``nltk.translate.meteor_score``) looks words up in WordNet for its synonym stage. Without the corpus it
either crashes half-way or, worse, is silently skipped by callers; :func:`require_wordnet` turns that into a
:class:`~tuneval.errors.WordNetMissingError` that says how to install it.
"""

from __future__ import annotations

from tuneval.errors import WordNetMissingError

INSTALL_HINT = (
    "WordNet (needed by NLTK's METEOR) is not installed. Install it with one of:\n"
    "  online:  python -m nltk.downloader wordnet\n"
    "           (or: python -c \"import nltk; nltk.download('wordnet')\")\n"
    "  offline: python scripts/install_wordnet.py   (from the repository root; builds it from Debian's "
    "wordnet-base and wordnet-sense-index packages via apt-get download)"
)


def _probe_wordnet() -> int:
    """Load NLTK's WordNet and return the number of synsets of "dog" (raises if it cannot load)."""
    from nltk.corpus import wordnet

    return len(wordnet.synsets("dog"))


def wordnet_available() -> bool:
    """True when ``nltk.corpus.wordnet`` loads and knows the word "dog"."""
    try:
        return _probe_wordnet() > 0
    except (LookupError, OSError, ValueError, AssertionError):
        return False


def require_wordnet() -> None:
    """Raise :class:`WordNetMissingError` (with install instructions) unless WordNet loads."""
    if not wordnet_available():
        raise WordNetMissingError(INSTALL_HINT)
