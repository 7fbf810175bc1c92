#!/usr/bin/env python3
"""Write a randomly initialised BertForMaskedLM or ModernBertForMaskedLM (plus a tokenizer) for speed measurements.

The weights are random: the model is only for timing and memory measurements
of the Rust model code at realistic sizes, never for accuracy numbers.

Usage (needs torch, transformers, tokenizers; e.g. the parity venv)::

    python3 scripts/make_random_bert.py --size base --out /path/to/bert-base-random
    python3 scripts/make_random_bert.py --size tiny --out /path/to/bert-tiny-random
    python3 scripts/make_random_bert.py --size modernbert-base --out /path/to/modernbert-base-random

Sizes:
    base  12 layers, hidden 768, 12 heads, intermediate 3072, vocab 28996,
          max_position_embeddings 512 (the shape of bert-base-cased)
    tiny  2 layers, hidden 128, 2 heads, intermediate 512, vocab 30522,
          max_position_embeddings 512 (the shape of models/splade-tiny)
    modernbert-base  ModernBertForMaskedLM of answerdotai/ModernBERT-base's shape:
          22 layers (global every 3rd, the others local with a 128-token window),
          hidden 768, 12 heads, intermediate 1152 (GeGLU), vocab 50368, rotary bases
          160 000 / 10 000, no biases but the decoder's; its tokenizer is the 1000-token
          byte-level BPE of tests/fixtures/tiny-modernbert (the timing feeds random ids, so
          only the model's vocabulary size matters)
``--vocab-size`` overrides the vocabulary size; ``--seed`` (default 0) seeds
``torch.manual_seed``.

Output directory: ``config.json`` + ``model.safetensors`` (``save_pretrained``,
tied decoder), and a tokenizer:
    * vocab size equal to SPLADE-tiny's (30522): ``tokenizer.json`` copied
      from ``models/splade-tiny`` (run ``scripts/fetch_splade_tiny.sh``);
    * otherwise a WordPiece ``vocab.txt`` of exactly ``vocab_size`` lines:
      SPLADE-tiny's vocabulary in id order (cut to ``vocab_size`` if smaller;
      [PAD]=0, [UNK]=100, [CLS]=101, [SEP]=102, [MASK]=103 stay in place),
      then ``[unused_k]`` fillers if larger; plus a ``tokenizer.json`` built
      from that vocab.txt with the same normalizer/pre-tokenizer/template as
      SPLADE-tiny's, so loaders that read either file work.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

import torch
from transformers import BertConfig, BertForMaskedLM

REPO = Path(__file__).resolve().parents[1]

SIZES = {
    "base": dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12,
                 intermediate_size=3072, vocab_size=28996, max_position_embeddings=512),
    "tiny": dict(num_hidden_layers=2, hidden_size=128, num_attention_heads=2,
                 intermediate_size=512, vocab_size=30522, max_position_embeddings=512),
    "modernbert-base": dict(num_hidden_layers=22, hidden_size=768, num_attention_heads=12,
                            intermediate_size=1152, vocab_size=50368, max_position_embeddings=8192),
}


def splade_vocab(tokenizer_json: Path) -> list[str]:
    vocab = json.loads(tokenizer_json.read_text(encoding="utf-8"))["model"]["vocab"]
    by_id = sorted(vocab.items(), key=lambda kv: kv[1])
    assert [i for _, i in by_id] == list(range(len(by_id))), "SPLADE vocab ids are not dense"
    return [t for t, _ in by_id]


def write_tokenizer(out: Path, vocab_size: int, splade_dir: Path) -> str:
    tj = splade_dir / "tokenizer.json"
    if not tj.exists():
        raise SystemExit(f"{tj} missing: run scripts/fetch_splade_tiny.sh first")
    base = splade_vocab(tj)
    if vocab_size == len(base):
        shutil.copyfile(tj, out / "tokenizer.json")
        return f"copied {tj}"
    entries = base[:vocab_size]
    k = 0
    while len(entries) < vocab_size:
        filler = f"[unused_{k}]"
        k += 1
        if filler not in base:
            entries.append(filler)
    (out / "vocab.txt").write_text("".join(t + "\n" for t in entries), encoding="utf-8")

    from tokenizers import Tokenizer
    from tokenizers.models import WordPiece

    src = json.loads(tj.read_text(encoding="utf-8"))
    tok = Tokenizer(WordPiece(vocab={t: i for i, t in enumerate(entries)}, unk_token="[UNK]",
                              continuing_subword_prefix="##", max_input_chars_per_word=100))
    data = json.loads(tok.to_str())
    for key in ("normalizer", "pre_tokenizer", "post_processor", "decoder", "added_tokens"):
        data[key] = src[key]
    (out / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return f"vocab.txt with {vocab_size} entries ({min(vocab_size, len(base))} from SPLADE-tiny) + tokenizer.json"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", choices=sorted(SIZES), required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--vocab-size", type=int)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--splade-dir", default=os.path.join(os.environ.get("AUTOPROMPT_MODELS_DIR", str(REPO / "models")), "splade-tiny"))
    args = ap.parse_args()

    shape = dict(SIZES[args.size])
    if args.vocab_size:
        shape["vocab_size"] = args.vocab_size
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(args.seed)
    if args.size == "modernbert-base":
        from transformers import ModernBertConfig, ModernBertForMaskedLM

        cfg = ModernBertConfig(global_attn_every_n_layers=3, local_attention=128,
                               global_rope_theta=160_000.0, local_rope_theta=10_000.0,
                               tie_word_embeddings=True, **shape)
        model = ModernBertForMaskedLM(cfg).eval()
        model.save_pretrained(str(out))
        tj = REPO / "tests" / "fixtures" / "tiny-modernbert" / "tokenizer.json"
        shutil.copyfile(tj, out / "tokenizer.json")
        n = sum(p.numel() for p in model.parameters())
        print(f"model: {args.size} {shape} -> {out} ({n / 1e6:.1f}M parameters)")
        print(f"tokenizer: copied {tj}")
        return
    cfg = BertConfig(type_vocab_size=2, hidden_act="gelu", layer_norm_eps=1e-12, pad_token_id=0,
                     tie_word_embeddings=True, **shape)
    model = BertForMaskedLM(cfg).eval()
    model.save_pretrained(str(out))  # safetensors
    n = sum(p.numel() for p in model.parameters())
    print(f"model: {args.size} {shape} -> {out} ({n / 1e6:.1f}M parameters)")
    print(f"tokenizer: {write_tokenizer(out, shape['vocab_size'], Path(args.splade_dir))}")


if __name__ == "__main__":
    main()
