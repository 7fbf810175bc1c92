#!/usr/bin/env python3
"""Reference ids for tokenizer settings, from transformers (developers run it; CI reads the JSON).

    /path/to/venv/bin/python tests/parity/make_tokenizer_settings.py

Writes ``tests/fixtures/parity/tokenizer_settings.json``: for each case, the files of a
tokenizer directory (built from the committed ``tests/fixtures/tiny-distilbert/``: its
``vocab.txt`` and ``tokenizer.json`` are copied, the JSON files are written as given) and the
ids transformers gives ``TEXTS`` with special tokens (``tokenizer(text)["input_ids"]``).
``tests/parity.rs`` builds the same directories and compares.

The cases: a vocabulary alone (BERT's defaults: lower-casing, accents stripped, Chinese
characters split); ``do_lower_case``, ``strip_accents`` and ``tokenize_chinese_chars`` in
``tokenizer_config.json`` beside a ``vocab.txt``; the same settings beside a
``tokenizer.json`` whose ``BertNormalizer`` says otherwise (transformers follows the
config); added tokens from ``added_tokens.json`` and from ``added_tokens_decoder``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import transformers
from transformers import AutoTokenizer

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "tests/fixtures/tiny-distilbert"
OUT = ROOT / "tests/fixtures/parity/tokenizer_settings.json"

TEXTS = [
    "Héllo PARIS good <new> <ent> 北京 [MASK] .",
    "Ünïcödé café naïve RÉSUMÉ 東京 was good",
]

CONFIG = json.loads((SOURCE / "tokenizer_config.json").read_text())


def with_config(**changes) -> dict:
    config = dict(CONFIG)
    config.update(changes)
    return config


CASES = [
    ("vocab only", ["vocab.txt"], {}),
    ("vocab, cased", ["vocab.txt"], {"tokenizer_config.json": {"do_lower_case": False}}),
    (
        "vocab, lower-cased, accents kept",
        ["vocab.txt"],
        {"tokenizer_config.json": {"do_lower_case": True, "strip_accents": False}},
    ),
    (
        "vocab, Chinese characters not split",
        ["vocab.txt"],
        {"tokenizer_config.json": {"tokenize_chinese_chars": False}},
    ),
    (
        "tokenizer.json, config says cased",
        ["vocab.txt", "tokenizer.json"],
        {"tokenizer_config.json": with_config(do_lower_case=False)},
    ),
    (
        "tokenizer.json, config keeps accents",
        ["vocab.txt", "tokenizer.json"],
        {"tokenizer_config.json": with_config(strip_accents=False)},
    ),
    ("vocab, added_tokens.json", ["vocab.txt"], {"added_tokens.json": {"<new>": 2000}}),
    (
        "vocab, added_tokens_decoder",
        ["vocab.txt"],
        {
            "tokenizer_config.json": {
                "added_tokens_decoder": {
                    "2000": {
                        "content": "<ent>",
                        "special": True,
                        "lstrip": False,
                        "rstrip": False,
                        "single_word": False,
                        "normalized": False,
                    }
                }
            }
        },
    ),
]


def main() -> None:
    cases = []
    for name, copied, written in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            for f in copied:
                shutil.copy(SOURCE / f, d / f)
            for f, content in written.items():
                (d / f).write_text(json.dumps(content, indent=2))
            tok = AutoTokenizer.from_pretrained(d) if "tokenizer.json" in copied else (
                transformers.BertTokenizer.from_pretrained(d)
            )
            ids = [tok(t)["input_ids"] for t in TEXTS]
        cases.append({"name": name, "copied": copied, "written": written, "ids": ids})
        print(name, ids)
    OUT.write_text(
        json.dumps(
            {"transformers_version": transformers.__version__, "texts": TEXTS, "cases": cases},
            indent=1,
            ensure_ascii=False,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
