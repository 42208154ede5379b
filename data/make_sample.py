"""Rebuild the bundled sample under data/sample from the full files (see data/sample/README.md).

    python data/make_sample.py ../shared/data
"""

import gzip
import json
import random
import sys
from collections import defaultdict
from pathlib import Path


def read(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write(path: Path, rows: list[dict]) -> None:
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
    if path.suffix == ".gz":
        with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
            f.write(text)
    else:
        path.write_bytes(text)


def per_article(rows: list[dict], answerable: int, unanswerable: int, rng: random.Random) -> list[dict]:
    """Up to `answerable` + `unanswerable` questions from each article, in the official order."""
    by_title = defaultdict(list)
    for r in rows:
        by_title[r["title"]].append(r)
    keep = set()
    for qs in by_title.values():
        has = [r["id"] for r in qs if r["answers"]["text"]]
        no = [r["id"] for r in qs if not r["answers"]["text"]]
        keep |= set(rng.sample(has, min(answerable, len(has)))) | set(rng.sample(no, min(unanswerable, len(no))))
    return [r for r in rows if r["id"] in keep]


def main(full: Path) -> None:
    out = Path(__file__).parent / "sample"
    rng = random.Random(1)
    sst_train = read(full / "sst2/train.jsonl")
    write(out / "sst2/train.jsonl", sorted(rng.sample(sst_train, 5000), key=lambda r: r["idx"]))
    write(out / "sst2/validation.jsonl", read(full / "sst2/validation.jsonl"))
    # SQuAD train: every unanswerable question (only Zelda and Spectre have any: 160 + 188) and 60 answerable ones
    # per article (the official protocol's data; the default study refuses it, see data/sample/README.md).
    # Dev: the whole official dev set, whose articles the default study divides into training and scored ones.
    squad_train = read(full / "squad_v2/train_partial.jsonl.gz")
    write(out / "squad_v2/train_partial.jsonl.gz", per_article(squad_train, 60, 1000, random.Random(2)))
    write(out / "squad_v2/validation.jsonl.gz", read(full / "squad_v2/validation.jsonl.gz"))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data"))
