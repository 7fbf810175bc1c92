#!/usr/bin/env python3
"""Write checkpoints in the shapes real users bring, derived from the committed tiny RoBERTa.

Run by developers, not by CI (CI only reads what this writes; the files are committed):

    /path/to/venv/bin/python tests/parity/make_checkpoint_shapes.py

Every directory under ``tests/fixtures/checkpoint-shapes/`` holds the weights of
``tests/fixtures/tiny-roberta/`` (a ``RobertaForMaskedLM``) re-saved in one shape, with its
``config.json`` (tokenizer files are not copied: the tests take them from ``tiny-roberta/``).
``tests/parity.rs`` loads each one and checks that it gives the plain model's outputs, or
the error the shape calls for:

``extra-heads/``
    ``model.safetensors`` with the MLM model's tensors plus tensors it does not use: a
    ``RobertaForSequenceClassification`` head (``classifier.dense.*``,
    ``classifier.out_proj.*``, randomly initialised, seed 1) and a bottleneck adapter in
    every layer (``roberta.encoder.layer.N.output.adapter.{down,up}.{weight,bias}``), as
    multi-task and adapter checkpoints ship them.
``encoder-only/``
    A ``RobertaModel`` (with its pooler) holding the same encoder weights, saved with
    ``save_pretrained``: names without the ``roberta.`` prefix and no ``lm_head.*``, as a
    sentence-embedding or base-model checkpoint is. It has no masked-LM head.
``legacy-bin/``
    ``pytorch_model.bin`` written by ``torch.save(state_dict, ...,
    _use_new_zipfile_serialization=False)``: the legacy (pre-1.6, non-zip) pickle format
    many older hub checkpoints still use; the full state dict, so ``lm_head.decoder.*``
    share storage with the tensors they are tied to.
``sharded/``
    ``save_pretrained(..., max_shard_size="100KB")``: ``model-0000i-of-0000n.safetensors``
    shards and ``model.safetensors.index.json`` (its ``weight_map`` names each tensor's
    shard), as every large checkpoint is distributed.
``fp16/`` and ``bf16/``
    ``model.to(torch.float16 / torch.bfloat16).save_pretrained(...)``: half-precision
    ``model.safetensors``, as most recent checkpoints ship.

The BERT-named shapes (a ``BertForPreTraining`` checkpoint, extra ``cls.*`` heads, a bare
``BertModel``, names without ``bert.``) are built by the tests themselves from
``models/splade-tiny`` (17 MB, not committed), in a temporary directory.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import (
    RobertaConfig,
    RobertaForMaskedLM,
    RobertaForSequenceClassification,
    RobertaModel,
)

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "tests/fixtures/tiny-roberta"
OUT = ROOT / "tests/fixtures/checkpoint-shapes"


def fresh(name: str) -> Path:
    path = OUT / name
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def contiguous(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Separate storage per tensor (safetensors refuses shared storage)."""
    return {k: v.detach().clone().contiguous() for k, v in state.items()}


def main() -> None:
    config = RobertaConfig.from_pretrained(SOURCE)
    model = RobertaForMaskedLM.from_pretrained(SOURCE, attn_implementation="eager").eval()
    # What `save_pretrained` writes: the tied decoder is left out.
    state = {
        k: v
        for k, v in model.state_dict().items()
        if k not in ("lm_head.decoder.weight", "lm_head.decoder.bias")
    }

    # Extra heads: a sequence classifier beside the MLM head, and an adapter per layer.
    out = fresh("extra-heads")
    torch.manual_seed(1)
    classifier = RobertaForSequenceClassification(config).classifier
    extra = dict(state)
    extra.update({f"classifier.{k}": v for k, v in classifier.state_dict().items()})
    h = config.hidden_size
    for i in range(config.num_hidden_layers):
        prefix = f"roberta.encoder.layer.{i}.output.adapter"
        extra[f"{prefix}.down.weight"] = torch.randn(4, h) * 0.02
        extra[f"{prefix}.down.bias"] = torch.zeros(4)
        extra[f"{prefix}.up.weight"] = torch.randn(h, 4) * 0.02
        extra[f"{prefix}.up.bias"] = torch.zeros(h)
    save_file(contiguous(extra), out / "model.safetensors", metadata={"format": "pt"})
    shutil.copy(SOURCE / "config.json", out / "config.json")

    # A bare encoder (RobertaModel with pooler): no MLM head, names without `roberta.`.
    out = fresh("encoder-only")
    encoder = RobertaModel(config, add_pooling_layer=True)
    missing, unexpected = encoder.load_state_dict(model.roberta.state_dict(), strict=False)
    assert all(k.startswith("pooler.") for k in missing), missing
    assert not unexpected, unexpected
    encoder.config.architectures = ["RobertaModel"]
    encoder.save_pretrained(out)

    # The legacy (non-zip) pickle format; the full state dict, tied tensors sharing storage
    # as `save_pretrained(safe_serialization=False)` wrote them.
    out = fresh("legacy-bin")
    torch.save(
        model.state_dict(),
        out / "pytorch_model.bin",
        _use_new_zipfile_serialization=False,
    )
    shutil.copy(SOURCE / "config.json", out / "config.json")

    # Sharded safetensors with an index.
    out = fresh("sharded")
    model.save_pretrained(out, max_shard_size="100KB")
    assert (out / "model.safetensors.index.json").is_file(), sorted(p.name for p in out.iterdir())

    # Half precision.
    for name, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
        out = fresh(name)
        half = RobertaForMaskedLM.from_pretrained(SOURCE).to(dtype)
        half.save_pretrained(out)

    for path in sorted(OUT.rglob("*")):
        if path.is_file():
            print(f"{path.stat().st_size:>8}  {path.relative_to(ROOT)}")
    index = json.loads((OUT / "sharded/model.safetensors.index.json").read_text())
    print("shards:", sorted(set(index["weight_map"].values())))


if __name__ == "__main__":
    main()
