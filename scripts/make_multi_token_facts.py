#!/usr/bin/env python3
"""Write data/facts/: fact tables whose objects are often several tokens.

LAMA's T-REx test files keep only facts whose object is in its common vocabulary (single
tokens of the models it compared), so they cannot show what scoring objects of several
tokens changes. LPAQA's T-REx training facts (`../shared/data/lpaqa/TREx_train`, see
data/README.md) are not filtered that way: most objects of place-of-birth and
place-of-death facts are city names that BERT's vocabulary splits ("Thiruvananthapuram",
"Wiesbaden").

For each relation it writes

* ``data/facts/<P>.jsonl``: every fact as ``{"sub_label", "obj_label", "split"}``, the split
  ``test`` for a fifth of the subjects (by the SHA-256 of the subject's Wikidata id, so the
  split is fixed) and ``train`` for the rest;
* ``data/facts/<P>_objects.txt``: every distinct object, one per line, in order of first
  appearance: the candidate answers (``task.vocab``).

Run from the repository root: ``python3 scripts/make_multi_token_facts.py``.
"""

import hashlib
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO.parent / "shared" / "data" / "lpaqa" / "TREx_train"
OUT = REPO / "data" / "facts"
RELATIONS = ["P19", "P20"]


def split_of(uri: str) -> str:
    return "test" if hashlib.sha256(uri.encode()).digest()[0] % 5 == 0 else "train"


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for relation in RELATIONS:
        facts = [json.loads(line) for line in (SOURCE / f"{relation}.jsonl").open(encoding="utf-8")]
        rows, objects = [], {}
        for f in facts:
            rows.append({"sub_label": f["sub_label"], "obj_label": f["obj_label"], "split": split_of(f["sub_uri"])})
            objects.setdefault(f["obj_label"], None)
        with (OUT / f"{relation}.jsonl").open("w", encoding="utf-8") as out:
            for r in rows:
                out.write(json.dumps(r, ensure_ascii=False) + "\n")
        (OUT / f"{relation}_objects.txt").write_text("".join(o + "\n" for o in objects), encoding="utf-8")
        test = sum(r["split"] == "test" for r in rows)
        print(f"{relation}: {len(rows)} facts ({test} test), {len(objects)} objects")


if __name__ == "__main__":
    main()
