#!/usr/bin/env python3
"""Write the fixtures that scoring of answers of several tokens is checked against.

Run by developers, not by CI (CI reads the committed JSON). Same environment as
``make_fixtures.py``::

    scripts/fetch_splade_tiny.sh
    /path/to/venv-parity/bin/python tests/parity/make_multi_token_fixtures.py

For SPLADE-tiny (BERT, WordPiece), the committed tiny RoBERTa (byte-level BPE)
and the committed tiny XLM-RoBERTa (SentencePiece) it writes
``tests/fixtures/parity/multi_token_<model>.json``::

    {"model", "torch_version", "transformers_version", "mask_token_id",
     "words": [{"text", "ids"}],           # each word's tokens, read mid-sentence
     "classes": [[word index, ...], ...],   # two classes of several words
     "cases": [{"sentence", "prefix_ids", "suffix_ids", "trigger_position",
                "scores": {"<strategy>/<normalize>": [score per word]},
                "class_scores": {"<strategy>/<normalize>": [score per class]},
                "loss": {"<strategy>/<normalize>": minus class 0's score},
                "gradient": {"<strategy>/<normalize>": [hidden floats]}}]}

A prompt is ``prefix_ids + [MASK] × n + suffix_ids`` for a word of ``n`` tokens
(the prefix: ``[CLS]``, the sentence, a trigger token at ``trigger_position``,
"it was"; the suffix: "." and ``[SEP]``). A word's score, by strategy:

* ``independent``: one pass, every mask open; the sum over masks of the
  log-softmax (full vocabulary) of the word's token there.
* ``left_to_right``: pass ``j`` has the word's first ``j`` tokens placed and
  reads mask ``j``; the sum.
* ``confidence``: ``n`` passes; each reads every open mask, places the token
  with the highest log-probability (the first on ties) and adds it.

``mean`` divides by ``n``. A class's score is the log-sum-exp of its words'
scores; ``loss`` is minus class 0's score and ``gradient`` its gradient with
respect to the input embedding at ``trigger_position`` summed over every pass
(``confidence``: the passes of the order its forward pass chose). Float32 on
CPU, eval mode, eager attention; floats written with ``repr``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import transformers
from transformers import (
    AutoModelForMaskedLM,
    PreTrainedTokenizerFast,
    RobertaTokenizerFast,
)

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
OUT = FIXTURES / "parity"

WORDS = [
    "good",
    "very good",
    "wonderful",
    "bad",
    "not bad",
    "terrible",
    "abbreviation",
    "rio de janeiro",
]
# Class 0: good, very good, wonderful; class 1: bad, not bad, terrible, abbreviation.
CLASSES = [[0, 1, 2], [3, 4, 5, 6]]
SENTENCES = [
    "the film is a charming and often affecting journey .",
    "unflinchingly bleak and desperate",
]
STRATEGIES = ["independent", "left_to_right", "confidence"]
NORMS = ["sum", "mean"]


def load(name: str):
    if name == "splade_tiny":
        path = REPO / "models" / "splade-tiny"
        if not (path / "model.safetensors").exists():
            sys.exit(f"{path} missing: run scripts/fetch_splade_tiny.sh first")
        tok = PreTrainedTokenizerFast(
            tokenizer_file=str(path / "tokenizer.json"),
            unk_token="[UNK]",
            sep_token="[SEP]",
            pad_token="[PAD]",
            cls_token="[CLS]",
            mask_token="[MASK]",
        )
        byte_level = False
    elif name == "tiny_roberta":
        path = FIXTURES / "tiny-roberta"
        tok = RobertaTokenizerFast.from_pretrained(str(path))
        byte_level = True
    else:
        path = FIXTURES / "tiny-xlm-roberta"
        tok = PreTrainedTokenizerFast.from_pretrained(str(path))
        byte_level = False
    model = AutoModelForMaskedLM.from_pretrained(str(path), attn_implementation="eager")
    return model.float().eval(), tok, byte_level


def pieces(tok, text: str, byte_level: bool) -> list[int]:
    """A text read mid-sentence: after a space for byte-level BPE (as the Rust templates)."""
    return tok(" " + text if byte_level else text, add_special_tokens=False)["input_ids"]


def log_probs(model, ids: list[int], trigger: int, grad: bool):
    """Log-softmax at every position, and the input embeddings (for gradients)."""
    ids_t = torch.tensor([ids])
    embeds = model.get_input_embeddings()(ids_t).detach()
    if grad:
        embeds.requires_grad_(True)
    logits = model(inputs_embeds=embeds, attention_mask=torch.ones_like(ids_t)).logits[0]
    return torch.log_softmax(logits, dim=-1), embeds


def word_score(model, prefix, suffix, trigger, word, mask_id, strategy, grad):
    """The word's summed log-probability (a tensor with a graph when `grad`), and the
    embeddings tensors of its passes."""
    n, p = len(word), len(prefix)
    passes = []
    total = torch.zeros(())
    if strategy == "independent":
        lp, e = log_probs(model, prefix + [mask_id] * n + suffix, trigger, grad)
        passes.append(e)
        for j in range(n):
            total = total + lp[p + j, word[j]]
    elif strategy == "left_to_right":
        for j in range(n):
            lp, e = log_probs(model, prefix + word[:j] + [mask_id] * (n - j) + suffix, trigger, grad)
            passes.append(e)
            total = total + lp[p + j, word[j]]
    else:
        filled = [None] * n
        while any(f is None for f in filled):
            ids = prefix + [mask_id if f is None else f for f in filled] + suffix
            lp, e = log_probs(model, ids, trigger, grad)
            passes.append(e)
            open_ = [j for j in range(n) if filled[j] is None]
            values = [lp[p + j, word[j]] for j in open_]
            best = max(range(len(open_)), key=lambda i: (float(values[i]), -i))
            total = total + values[best]
            filled[open_[best]] = word[open_[best]]
    return total, passes


def case(model, tok, byte_level, sentence, words):
    mask_id = tok.mask_token_id
    sentence_ids = pieces(tok, sentence, False)
    trigger_id = pieces(tok, "movie", byte_level)[0]
    prefix = [tok.cls_token_id] + sentence_ids + [trigger_id] + pieces(tok, "it was", byte_level)
    trigger = 1 + len(sentence_ids)
    suffix = pieces(tok, ".", byte_level) + [tok.sep_token_id]
    out = {
        "sentence": sentence,
        "prefix_ids": prefix,
        "suffix_ids": suffix,
        "trigger_position": trigger,
        "scores": {},
        "class_scores": {},
        "loss": {},
        "gradient": {},
    }
    for strategy in STRATEGIES:
        with torch.no_grad():
            raw = [float(word_score(model, prefix, suffix, trigger, w, mask_id, strategy, False)[0]) for w in words]
        for norm in NORMS:
            key = f"{strategy}/{norm}"
            scores = [s / len(w) if norm == "mean" else s for s, w in zip(raw, words)]
            out["scores"][key] = scores
            out["class_scores"][key] = [
                float(torch.logsumexp(torch.tensor([scores[i] for i in c], dtype=torch.float32), 0))
                for c in CLASSES
            ]
            # Gradient of minus class 0's score at the trigger, over every pass.
            terms, passes = [], []
            for i in CLASSES[0]:
                s, ps = word_score(model, prefix, suffix, trigger, words[i], mask_id, strategy, True)
                terms.append(s / len(words[i]) if norm == "mean" else s)
                passes.extend(ps)
            loss = -torch.logsumexp(torch.stack(terms), 0)
            grads = torch.autograd.grad(loss, passes)
            g = sum(gr[0, trigger] for gr in grads)
            out["loss"][key] = float(loss)
            out["gradient"][key] = [float(x) for x in g]
    return out


def main():
    torch.manual_seed(0)
    for name in ["splade_tiny", "tiny_roberta", "tiny_xlm_roberta"]:
        model, tok, byte_level = load(name)
        words = [{"text": w, "ids": pieces(tok, w, byte_level)} for w in WORDS]
        unknown = [w["text"] for w in words if tok.unk_token_id in w["ids"]]
        if unknown:
            sys.exit(f"{name}: {unknown} contain the unknown token")
        print(name, [(w["text"], tok.convert_ids_to_tokens(w["ids"])) for w in words])
        fixture = {
            "model": name,
            "torch_version": torch.__version__,
            "transformers_version": transformers.__version__,
            "mask_token_id": tok.mask_token_id,
            "words": words,
            "classes": CLASSES,
            "cases": [case(model, tok, byte_level, s, [w["ids"] for w in words]) for s in SENTENCES],
        }
        path = OUT / f"multi_token_{name}.json"
        path.write_text(json.dumps(fixture, indent=1) + "\n")
        print("wrote", path)


if __name__ == "__main__":
    main()
