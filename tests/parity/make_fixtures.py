#!/usr/bin/env python3
"""Write the numerical-parity fixtures that the Rust model code is tested against.

Run by developers, not by CI. CI only reads the JSON files this script writes
(they are committed); it never needs Python, torch or transformers.

How to run (from the repository root)::

    scripts/fetch_splade_tiny.sh                 # models/splade-tiny/
    python3 -m venv /path/to/venv-parity
    /path/to/venv-parity/bin/pip install torch transformers safetensors tokenizers
    /path/to/venv-parity/bin/python tests/parity/make_fixtures.py

Options: ``--models-dir`` (default ``$AUTOPROMPT_MODELS_DIR`` or ``models``),
``--lama-dir`` (default ``/work/shared/data/lama``; only ``TREx/P19.jsonl`` is
read), ``--retrain-tiny-roberta`` (rebuild the committed tiny RoBERTa instead
of reusing it).

What it writes
--------------
``tests/fixtures/tiny-roberta/``
    A randomly initialised ``RobertaForMaskedLM`` (``torch.manual_seed(0)``;
    hidden 32, 2 layers, 2 heads, intermediate 64, max_position_embeddings
    130 (so at most 128 tokens: positions start at pad id 1 + 1), type_vocab_size
    1, vocab 1000, tied decoder, layer_norm_eps 1e-5, initializer_range 0.2
    instead of 0.02 so attention is not near-uniform) saved with
    ``save_pretrained`` as ``config.json`` + ``model.safetensors``, plus a
    byte-level BPE tokenizer trained with ``tokenizers.ByteLevelBPETokenizer``
    (vocab_size 1000, min_frequency 2) on the SST-2 train sentences
    (``data/sst2/train.tsv``), special tokens ``<s>``=0, ``<pad>``=1,
    ``</s>``=2, ``<unk>``=3, ``<mask>``=4 (``<mask>`` with ``lstrip``, as in
    roberta-base, so the space before it is absorbed; no prefix space is
    added to the text): ``vocab.json``, ``merges.txt`` and
    the ``RobertaTokenizerFast.save_pretrained`` files (``tokenizer.json``,
    ``tokenizer_config.json``, ...). Created only when missing (or with
    ``--retrain-tiny-roberta``); otherwise the committed files are loaded, so
    the fixtures always describe the committed weights.
``tests/fixtures/tiny-roberta-bin/``
    The same weights as ``config.json`` + ``pytorch_model.bin`` for testing
    the ``.bin`` load path: ``torch.save`` (zip/pickle format) of the full
    ``state_dict``, as transformers 4 wrote with ``safe_serialization=False``
    (transformers 5 writes only safetensors). Tied tensors appear under both
    names, sharing one storage.
``tests/fixtures/parity/splade_tiny.json`` and ``tests/fixtures/parity/tiny_roberta.json``
    One fixture per model, described below.

Fixture format
--------------
``{"model", "model_dir", "torch_version", "transformers_version", "dtype",
"attn_implementation", "mask_token", "mask_token_id", "cases", "tokenizer_cases"}``

All computation is float32 on CPU with the model in ``eval()`` mode (dropout
off) and eager attention. Floats are written with Python's ``repr`` (the
float32 value widened exactly to a double), so no precision is lost.

``cases`` (5): three SST-2 dev sentences (the first three rows of
``data/sst2/dev.tsv``, trailing whitespace stripped) formatted as
``"<sentence> it was <MASK> ."``, and two LAMA facts (the first two lines of
``TREx/P19.jsonl``) formatted as ``"<sub_label> was born in <MASK> ."``,
where ``<MASK>`` is the model's mask token (``[MASK]`` for BERT, ``<mask>``
for RoBERTa). Each case has:

``text``
    The string given to the tokenizer.
``input_ids``
    HF fast tokenizer output with special tokens, no padding, no truncation.
``token_type_ids``
    All zeros (length of ``input_ids``); passed to the model explicitly.
``mask_position``
    Index of the (single) mask token in ``input_ids``.
``subset_tokens`` / ``subset_ids``
    The token strings and ids of ``good, bad, great, terrible`` (BERT: the
    word pieces ``good`` ...; RoBERTa: the space-prefixed tokens ``" good"``
    = ``Ġgood`` ...), followed by ids 100..119. For the tiny RoBERTa, a word
    that is not a single token in its 1000-entry vocabulary is represented by
    the first token of its encoding (``subset_tokens`` shows which).
``subset_logits``
    The MLM logits at ``mask_position`` for ``subset_ids`` (same order).
``mask_features``
    The MLM head transform at ``mask_position``, full hidden vector:
    BERT ``model.cls.predictions.transform(h)``
    (dense -> gelu -> LayerNorm); RoBERTa
    ``lm_head.layer_norm(gelu(lm_head.dense(h)))`` with the erf gelu, where
    ``h`` is the last encoder layer's output. The logits are
    ``mask_features @ word_embeddings.T + bias``.
``log_z``
    ``logsumexp`` of the full-vocabulary logits at ``mask_position``.
``target_id``
    Id of ``good`` (BERT) / ``Ġgood`` (RoBERTa).
``loss``
    ``-log_softmax(full_logits[mask_position])[target_id]``.
``grad_inputs_embeds``
    ``d loss / d inputs_embeds`` as a ``[seq_len][hidden]`` nested list,
    where ``inputs_embeds = model.get_input_embeddings()(input_ids)`` is the
    word-embedding lookup output BEFORE position and token-type embeddings
    are added (and before the embedding LayerNorm): the model is called with
    ``inputs_embeds=<that tensor>.detach().requires_grad_()``,
    ``token_type_ids`` and an all-ones ``attention_mask``, and ``loss`` is
    back-propagated. (RoBERTa derives position ids from ``inputs_embeds``
    as ``padding_idx + 1 + arange(seq_len)``, the same as from unpadded
    ``input_ids``; the script asserts both paths give the same logits.)

``tokenizer_cases`` (10): SST-2 dev sentences with the ``input_ids`` the HF
fast tokenizer gives them (with special tokens). The texts are stripped of
trailing whitespace except the first, which keeps the raw GLUE trailing
space to exercise whitespace handling; the set includes sentences with
accented letters, digits, hyphens and apostrophes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
import transformers
from tokenizers import AddedToken
from transformers import (
    BertForMaskedLM,
    DistilBertConfig,
    DistilBertForMaskedLM,
    DistilBertTokenizerFast,
    ElectraConfig,
    ElectraForMaskedLM,
    ElectraTokenizerFast,
    AlbertConfig,
    AlbertForMaskedLM,
    ModernBertConfig,
    ModernBertForMaskedLM,
    XLMRobertaConfig,
    XLMRobertaForMaskedLM,
    PreTrainedTokenizerFast,
    RobertaConfig,
    RobertaForMaskedLM,
    RobertaTokenizerFast,
)

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
OUT_DIR = FIXTURES / "parity"
TINY_ROBERTA = FIXTURES / "tiny-roberta"
TINY_ROBERTA_BIN = FIXTURES / "tiny-roberta-bin"
TINY_DISTILBERT = FIXTURES / "tiny-distilbert"
TINY_ELECTRA = FIXTURES / "tiny-electra"
TINY_XLMR = FIXTURES / "tiny-xlm-roberta"
TINY_ALBERT = FIXTURES / "tiny-albert"
TINY_MODERNBERT = FIXTURES / "tiny-modernbert"
SICK = REPO / "data" / "sick" / "SICK.txt"
SST2_TRAIN = REPO / "data" / "sst2" / "train.tsv"
SST2_DEV = REPO / "data" / "sst2" / "dev.tsv"

SUBSET_WORDS = ["good", "bad", "great", "terrible"]
EXTRA_IDS = list(range(100, 120))


def read_tsv_sentences(path: Path) -> list[str]:
    """Sentences (first column) of a GLUE SST-2 tsv with header, raw text."""
    out = []
    with open(path, encoding="utf-8", newline="") as f:
        next(f)
        for line in f:
            line = line.rstrip("\r\n")
            if line:
                out.append(line.split("\t")[0])
    return out


def read_p19(lama_dir: Path, n: int) -> list[str]:
    subs = []
    with open(lama_dir / "TREx" / "P19.jsonl", encoding="utf-8") as f:
        for line in f:
            subs.append(json.loads(line)["sub_label"])
            if len(subs) == n:
                break
    return subs


def floats(t: torch.Tensor):
    """Nested python floats (repr keeps the float32 value exactly)."""
    return t.detach().to(torch.float64).tolist()


# ---------------------------------------------------------------------------
# models


def load_splade(models_dir: Path):
    path = models_dir / "splade-tiny"
    if not (path / "model.safetensors").exists():
        sys.exit(f"{path} missing: run scripts/fetch_splade_tiny.sh first")
    model, info = BertForMaskedLM.from_pretrained(
        str(path), output_loading_info=True, attn_implementation="eager"
    )
    print(f"splade-tiny loading info: {info}")
    bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs")}
    if bad:
        sys.exit(f"splade-tiny did not load cleanly: {bad}")
    tok = PreTrainedTokenizerFast(
        tokenizer_file=str(path / "tokenizer.json"),
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
    )
    return model.float().eval(), tok, path


def train_byte_level_bpe(special_tokens: list[str]):
    """A byte-level BPE (vocab 1000, min frequency 2, no prefix space) trained on the SST-2
    train sentences, `special_tokens` taking ids 0.. in order."""
    from tokenizers import ByteLevelBPETokenizer

    sents = [s.strip() for s in read_tsv_sentences(SST2_TRAIN)]
    bpe = ByteLevelBPETokenizer(add_prefix_space=False)
    bpe.train_from_iterator(
        sents,
        vocab_size=1000,
        min_frequency=2,
        special_tokens=special_tokens,
        show_progress=False,
    )
    return bpe


def train_tiny_roberta_tokenizer(out: Path):
    bpe = train_byte_level_bpe(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    out.mkdir(parents=True, exist_ok=True)
    bpe.save_model(str(out))  # vocab.json + merges.txt
    # As in roberta-base, <mask> strips the space before it (lstrip), so
    # "was <mask>" is ["Ġwas", "<mask>"], not ["Ġwas", "Ġ", "<mask>"].
    # (transformers 5 takes `vocab`/`merges`; 4.x took `vocab_file`/`merges_file`.)
    kw = dict(
        model_max_length=128,
        mask_token=AddedToken("<mask>", lstrip=True, rstrip=False, normalized=False, special=True),
    )
    try:
        tok = RobertaTokenizerFast(vocab=str(out / "vocab.json"), merges=str(out / "merges.txt"), **kw)
    except TypeError:
        tok = RobertaTokenizerFast(vocab_file=str(out / "vocab.json"), merges_file=str(out / "merges.txt"), **kw)
    for t, i in [("<s>", 0), ("<pad>", 1), ("</s>", 2), ("<unk>", 3), ("<mask>", 4)]:
        assert tok.convert_tokens_to_ids(t) == i, (t, tok.convert_tokens_to_ids(t), i)
    tok.save_pretrained(str(out))
    return tok


def build_tiny_roberta(retrain: bool):
    if retrain or not (TINY_ROBERTA / "model.safetensors").exists():
        print(f"building tiny RoBERTa in {TINY_ROBERTA}")
        tok = train_tiny_roberta_tokenizer(TINY_ROBERTA)
        torch.manual_seed(0)
        cfg = RobertaConfig(
            vocab_size=len(tok),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=130,
            type_vocab_size=1,
            pad_token_id=1,
            bos_token_id=0,
            eos_token_id=2,
            layer_norm_eps=1e-5,
            hidden_act="gelu",
            tie_word_embeddings=True,
            # Larger than the default 0.02 so that attention is far from
            # uniform and outputs depend on the input: a parity test on a
            # near-constant network would catch few bugs.
            initializer_range=0.2,
        )
        model = RobertaForMaskedLM(cfg).eval()
        model.save_pretrained(str(TINY_ROBERTA))  # safetensors
        # transformers 5 always writes safetensors, so the legacy file is
        # written as transformers 4 did with safe_serialization=False:
        # torch.save (zip format) of the full state_dict, in which tied
        # tensors (lm_head.decoder.weight / word_embeddings, lm_head.bias /
        # lm_head.decoder.bias) are separate keys sharing one storage.
        shutil.rmtree(TINY_ROBERTA_BIN, ignore_errors=True)
        TINY_ROBERTA_BIN.mkdir(parents=True)
        model.config.save_pretrained(str(TINY_ROBERTA_BIN))
        torch.save(model.state_dict(), TINY_ROBERTA_BIN / "pytorch_model.bin")
        assert (TINY_ROBERTA_BIN / "pytorch_model.bin").exists(), "no pytorch_model.bin written"
    model, info = RobertaForMaskedLM.from_pretrained(
        str(TINY_ROBERTA), output_loading_info=True, attn_implementation="eager"
    )
    print(f"tiny-roberta loading info: {info}")
    tok = RobertaTokenizerFast.from_pretrained(str(TINY_ROBERTA))
    for t, i in [("<s>", 0), ("<pad>", 1), ("</s>", 2), ("<unk>", 3), ("<mask>", 4)]:
        assert tok.convert_tokens_to_ids(t) == i, (t, tok.convert_tokens_to_ids(t), i)
    probe = tok.convert_ids_to_tokens(tok("a good <mask> .")["input_ids"])
    assert probe == ["<s>", "a", "\u0120good", "<mask>", "\u0120.", "</s>"], probe
    # The .bin copy must hold the same weights.
    model_bin = RobertaForMaskedLM.from_pretrained(str(TINY_ROBERTA_BIN), attn_implementation="eager")
    sd, sdb = model.state_dict(), model_bin.state_dict()
    for k, v in sd.items():
        assert torch.equal(v, sdb[k]), f"{k} differs between safetensors and .bin"
    return model.float().eval(), tok, TINY_ROBERTA


def wordpiece_fast(cls, vocab: Path):
    """A fast WordPiece tokenizer of class `cls` over `vocab` (vocab.txt), at most 128 tokens.
    (transformers 5 takes `vocab`; 4.x took `vocab_file`.)"""
    try:
        return cls(vocab=str(vocab), model_max_length=128)
    except TypeError:
        return cls(vocab_file=str(vocab), model_max_length=128)


def train_unigram_tokenizer(out: Path, special_tokens: list[str], post_processor, **special):
    """A SentencePiece Unigram tokenizer (vocab 1000, `▁` word markers) trained on the SST-2
    train sentences, `special_tokens` taking ids 0.. in order, `post_processor` adding them
    around sequences, saved to `out` (tokenizer.json and the transformers files); `special`
    names the roles (`cls_token=...`) for transformers."""
    from tokenizers import SentencePieceUnigramTokenizer

    sents = [s.strip() for s in read_tsv_sentences(SST2_TRAIN)]
    sp = SentencePieceUnigramTokenizer()
    sp.train_from_iterator(
        sents,
        vocab_size=1000,
        special_tokens=special_tokens,
        unk_token="<unk>",
        show_progress=False,
    )
    sp._tokenizer.post_processor = post_processor
    out.mkdir(parents=True, exist_ok=True)
    sp.save(str(out / "tokenizer.json"))
    tok = PreTrainedTokenizerFast(
        tokenizer_file=str(out / "tokenizer.json"), model_max_length=128, **special
    )
    for i, t in enumerate(special_tokens):
        assert tok.convert_tokens_to_ids(t) == i, (t, tok.convert_tokens_to_ids(t), i)
    tok.save_pretrained(str(out))
    return tok


def load_built(cls, path: Path, name: str):
    """A model written by this script, loaded in eval mode with eager attention."""
    model, info = cls.from_pretrained(str(path), output_loading_info=True, attn_implementation="eager")
    print(f"{name} loading info: {info}")
    return model.float().eval()


def build_tiny_distilbert(retrain: bool):
    """A random DistilBertForMaskedLM (torch.manual_seed(0); dim 32, 2 layers, 2 heads,
    hidden_dim 64, max_position_embeddings 128, learned positions, initializer_range 0.2,
    tied vocab_projector) with a lower-casing WordPiece tokenizer (vocab 2000, min_frequency
    2; at 1000 the alphabet and its ## pieces leave no room for `good`) trained on the SST-2 train sentences; created only when missing."""
    if retrain or not (TINY_DISTILBERT / "model.safetensors").exists():
        print(f"building tiny DistilBERT in {TINY_DISTILBERT}")
        from tokenizers import BertWordPieceTokenizer

        sents = [s.strip() for s in read_tsv_sentences(SST2_TRAIN)]
        wp = BertWordPieceTokenizer(lowercase=True)
        wp.train_from_iterator(
            sents,
            vocab_size=2000,
            min_frequency=2,
            special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
            show_progress=False,
        )
        TINY_DISTILBERT.mkdir(parents=True, exist_ok=True)
        wp.save_model(str(TINY_DISTILBERT))  # vocab.txt
        tok = wordpiece_fast(DistilBertTokenizerFast, TINY_DISTILBERT / "vocab.txt")
        assert len(tok) == 2000, len(tok)
        tok.save_pretrained(str(TINY_DISTILBERT))
        torch.manual_seed(0)
        cfg = DistilBertConfig(
            vocab_size=len(tok),
            dim=32,
            n_layers=2,
            n_heads=2,
            hidden_dim=64,
            max_position_embeddings=128,
            sinusoidal_pos_embds=False,
            activation="gelu",
            pad_token_id=0,
            initializer_range=0.2,
            tie_word_embeddings=True,
        )
        DistilBertForMaskedLM(cfg).eval().save_pretrained(str(TINY_DISTILBERT))
    model = load_built(DistilBertForMaskedLM, TINY_DISTILBERT, "tiny-distilbert")
    tok = DistilBertTokenizerFast.from_pretrained(str(TINY_DISTILBERT))
    probe = tok.convert_ids_to_tokens(tok("a good [MASK] .")["input_ids"])
    assert probe == ["[CLS]", "a", "good", "[MASK]", ".", "[SEP]"], probe
    return model, tok, TINY_DISTILBERT


def build_tiny_electra(retrain: bool):
    """A random ElectraForMaskedLM, ELECTRA's generator (torch.manual_seed(0); embedding_size
    16 projected to hidden 32, 2 layers, 2 heads, intermediate 64, max_position_embeddings
    128, type_vocab_size 2, initializer_range 0.2, tied generator_lm_head), with the tiny
    DistilBERT's WordPiece vocabulary; created only when missing."""
    if retrain or not (TINY_ELECTRA / "model.safetensors").exists():
        print(f"building tiny ELECTRA generator in {TINY_ELECTRA}")
        TINY_ELECTRA.mkdir(parents=True, exist_ok=True)
        shutil.copy(TINY_DISTILBERT / "vocab.txt", TINY_ELECTRA / "vocab.txt")
        tok = wordpiece_fast(ElectraTokenizerFast, TINY_ELECTRA / "vocab.txt")
        assert len(tok) == 2000, len(tok)
        tok.save_pretrained(str(TINY_ELECTRA))
        torch.manual_seed(0)
        cfg = ElectraConfig(
            vocab_size=len(tok),
            embedding_size=16,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=128,
            type_vocab_size=2,
            hidden_act="gelu",
            pad_token_id=0,
            initializer_range=0.2,
            tie_word_embeddings=True,
        )
        ElectraForMaskedLM(cfg).eval().save_pretrained(str(TINY_ELECTRA))
    model = load_built(ElectraForMaskedLM, TINY_ELECTRA, "tiny-electra")
    tok = ElectraTokenizerFast.from_pretrained(str(TINY_ELECTRA))
    probe = tok.convert_ids_to_tokens(tok("a good [MASK] .")["input_ids"])
    assert probe == ["[CLS]", "a", "good", "[MASK]", ".", "[SEP]"], probe
    return model, tok, TINY_ELECTRA


def build_tiny_xlmr(retrain: bool):
    """A random XLMRobertaForMaskedLM (torch.manual_seed(0); the tiny RoBERTa's sizes: hidden
    32, 2 layers, 2 heads, intermediate 64, max_position_embeddings 130, type_vocab_size 1,
    layer_norm_eps 1e-5, initializer_range 0.2) with a SentencePiece Unigram tokenizer
    (`▁` word markers, vocab 1000) trained on the SST-2 train sentences, `<s>`=0, `<pad>`=1,
    `</s>`=2, `<unk>`=3, `<mask>`=4 (lstrip), RoBERTa's `<s> A </s>` post-processing;
    created only when missing."""
    if retrain or not (TINY_XLMR / "model.safetensors").exists():
        print(f"building tiny XLM-RoBERTa in {TINY_XLMR}")
        from tokenizers import processors

        tok = train_unigram_tokenizer(
            TINY_XLMR,
            ["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
            processors.RobertaProcessing(("</s>", 2), ("<s>", 0)),
            bos_token="<s>",
            eos_token="</s>",
            sep_token="</s>",
            cls_token="<s>",
            unk_token="<unk>",
            pad_token="<pad>",
            mask_token=AddedToken("<mask>", lstrip=True, rstrip=False, normalized=False, special=True),
        )
        torch.manual_seed(0)
        cfg = XLMRobertaConfig(
            vocab_size=len(tok),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=130,
            type_vocab_size=1,
            pad_token_id=1,
            bos_token_id=0,
            eos_token_id=2,
            layer_norm_eps=1e-5,
            hidden_act="gelu",
            tie_word_embeddings=True,
            initializer_range=0.2,
        )
        XLMRobertaForMaskedLM(cfg).eval().save_pretrained(str(TINY_XLMR))
    model = load_built(XLMRobertaForMaskedLM, TINY_XLMR, "tiny-xlm-roberta")
    tok = PreTrainedTokenizerFast.from_pretrained(str(TINY_XLMR))
    print("tiny-xlm-roberta probe:", tok.convert_ids_to_tokens(tok("a good <mask> .")["input_ids"]))
    return model, tok, TINY_XLMR


def build_tiny_albert(retrain: bool):
    """A random AlbertForMaskedLM (torch.manual_seed(0); embedding_size 16 projected to hidden
    32, 2 layers sharing one set of weights, 2 heads, intermediate 64, gelu_new,
    max_position_embeddings 128, type_vocab_size 2, initializer_range 0.2, tied decoder) with
    a SentencePiece Unigram tokenizer (vocab 1000, `▁` markers) trained on the SST-2 train
    sentences, `<pad>`=0, `<unk>`=1, `[CLS]`=2, `[SEP]`=3, `[MASK]`=4, BERT's
    `[CLS] A [SEP]` post-processing; created only when missing."""
    if retrain or not (TINY_ALBERT / "model.safetensors").exists():
        print(f"building tiny ALBERT in {TINY_ALBERT}")
        from tokenizers import processors

        tok = train_unigram_tokenizer(
            TINY_ALBERT,
            ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"],
            processors.BertProcessing(("[SEP]", 3), ("[CLS]", 2)),
            cls_token="[CLS]",
            sep_token="[SEP]",
            unk_token="<unk>",
            pad_token="<pad>",
            mask_token="[MASK]",
        )
        torch.manual_seed(0)
        cfg = AlbertConfig(
            vocab_size=len(tok),
            embedding_size=16,
            hidden_size=32,
            num_hidden_layers=2,
            num_hidden_groups=1,
            inner_group_num=1,
            num_attention_heads=2,
            intermediate_size=64,
            hidden_act="gelu_new",
            max_position_embeddings=128,
            type_vocab_size=2,
            pad_token_id=0,
            bos_token_id=2,
            eos_token_id=3,
            initializer_range=0.2,
            tie_word_embeddings=True,
        )
        AlbertForMaskedLM(cfg).eval().save_pretrained(str(TINY_ALBERT))
    model = load_built(AlbertForMaskedLM, TINY_ALBERT, "tiny-albert")
    tok = PreTrainedTokenizerFast.from_pretrained(str(TINY_ALBERT))
    print("tiny-albert probe:", tok.convert_ids_to_tokens(tok("a good [MASK] .")["input_ids"]))
    return model, tok, TINY_ALBERT


def build_tiny_modernbert(retrain: bool):
    """A random ModernBertForMaskedLM (torch.manual_seed(0); hidden 32, 3 layers (global,
    local, global: global_attn_every_n_layers 2), 2 heads, intermediate 48 (GeGLU), local
    attention 8 (a token sees 4 either side, shorter than every test sentence), rotary bases
    160 000 (global) and 10 000 (local), no biases but the decoder's, initializer_range 0.2,
    every norm's weight and the decoder bias then drawn at random (1 + 0.2·N(0, 1), 0.2·N(0, 1))
    so a mis-read norm or bias cannot pass) with a byte-level BPE tokenizer (vocab 1000) trained
    on the SST-2 train sentences, `[PAD]`=0, `[UNK]`=1, `[CLS]`=2, `[SEP]`=3, `[MASK]`=4
    (`lstrip`, as ModernBERT's), `[CLS] A [SEP]` / `[CLS] A [SEP] B [SEP]` post-processing;
    created only when missing."""
    if retrain or not (TINY_MODERNBERT / "model.safetensors").exists():
        print(f"building tiny ModernBERT in {TINY_MODERNBERT}")
        from tokenizers import processors

        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        bpe = train_byte_level_bpe(specials)
        bpe._tokenizer.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B [SEP]",
            special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
        )
        TINY_MODERNBERT.mkdir(parents=True, exist_ok=True)
        bpe.save(str(TINY_MODERNBERT / "tokenizer.json"))
        # As ModernBERT's own tokenizer: [MASK] absorbs the space before it.
        tj = json.loads((TINY_MODERNBERT / "tokenizer.json").read_text(encoding="utf-8"))
        for added in tj["added_tokens"]:
            if added["content"] == "[MASK]":
                added["lstrip"] = True
        (TINY_MODERNBERT / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False), encoding="utf-8")
        tok = PreTrainedTokenizerFast(
            tokenizer_file=str(TINY_MODERNBERT / "tokenizer.json"),
            model_max_length=128,
            pad_token="[PAD]",
            unk_token="[UNK]",
            cls_token="[CLS]",
            sep_token="[SEP]",
            mask_token=AddedToken("[MASK]", lstrip=True, rstrip=False, normalized=False, special=True),
        )
        for i, t in enumerate(specials):
            assert tok.convert_tokens_to_ids(t) == i, (t, tok.convert_tokens_to_ids(t), i)
        tok.save_pretrained(str(TINY_MODERNBERT))
        torch.manual_seed(0)
        cfg = ModernBertConfig(
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=48,
            num_hidden_layers=3,
            num_attention_heads=2,
            global_attn_every_n_layers=2,
            local_attention=8,
            global_rope_theta=160_000.0,
            local_rope_theta=10_000.0,
            max_position_embeddings=128,
            pad_token_id=0,
            cls_token_id=2,
            sep_token_id=3,
            bos_token_id=2,
            eos_token_id=3,
            initializer_range=0.2,
            tie_word_embeddings=True,
        )
        model = ModernBertForMaskedLM(cfg).eval()
        with torch.no_grad():
            for name, param in model.named_parameters():
                if name.endswith("norm.weight"):
                    param.copy_(1 + 0.2 * torch.randn_like(param))
                elif name == "decoder.bias":
                    param.copy_(0.2 * torch.randn_like(param))
        model.save_pretrained(str(TINY_MODERNBERT))
    model = load_built(ModernBertForMaskedLM, TINY_MODERNBERT, "tiny-modernbert")
    assert model.config.layer_types == ["full_attention", "sliding_attention", "full_attention"], model.config.layer_types
    assert model.config.sliding_window == 4
    tok = PreTrainedTokenizerFast.from_pretrained(str(TINY_MODERNBERT))
    print("tiny-modernbert probe:", tok.convert_ids_to_tokens(tok("a good [MASK] .")["input_ids"]))
    return model, tok, TINY_MODERNBERT


def read_sick_pair(path: Path) -> tuple[str, str]:
    """The first SICK pair (sentence_A, sentence_B)."""
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        row = dict(zip(header, f.readline().rstrip("\n").split("\t")))
    return row["sentence_A"], row["sentence_B"]


# ---------------------------------------------------------------------------
# fixtures


def head_features(model, kind: str, hidden: torch.Tensor) -> torch.Tensor:
    # XLM-RoBERTa's head is RoBERTa's (`lm_head`).
    if kind == "bert":
        return model.cls.predictions.transform(hidden)
    if kind == "distilbert":
        return model.vocab_layer_norm(F.gelu(model.vocab_transform(hidden)))
    if kind == "electra":
        return model.generator_predictions(hidden)
    if kind == "albert":
        p = model.predictions
        return p.LayerNorm(p.activation(p.dense(hidden)))
    if kind == "modernbert":
        return model.head(hidden)
    head = model.lm_head
    return head.layer_norm(F.gelu(head.dense(hidden)))


def subset(tok, kind: str):
    tokens, ids = [], []
    for w in SUBSET_WORDS:
        if kind in ("bert", "distilbert", "electra"):
            t = w
        elif kind in ("xlm-roberta", "albert"):
            t = "\u2581" + w  # SentencePiece spelling of " good"
        else:
            t = "\u0120" + w  # byte-level BPE spelling of " good"
        i = tok.convert_tokens_to_ids(t)
        if i is None or i == tok.unk_token_id:
            i = tok(" " + w if kind in ("roberta", "modernbert") else w, add_special_tokens=False)["input_ids"][0]
            if kind in ("xlm-roberta", "albert") and i == tok.convert_tokens_to_ids("\u2581"):
                i = tok(w, add_special_tokens=False)["input_ids"][1]
            t = tok.convert_ids_to_tokens(i)
        tokens.append(t)
        ids.append(i)
    target_token = {
        "roberta": "\u0120good",
        "modernbert": "\u0120good",
        "xlm-roberta": "\u2581good",
        "albert": "\u2581good",
    }.get(kind, "good")
    target = tok.convert_tokens_to_ids(target_token)
    assert target is not None and target != tok.unk_token_id, f"{target_token!r} is not one token"
    tokens += tok.convert_ids_to_tokens(EXTRA_IDS)
    return tokens, ids + EXTRA_IDS, target


def make_case(model, tok, kind: str, text: str, text_pair: str | None = None):
    enc = tok(text, text_pair, add_special_tokens=True)
    input_ids = list(enc["input_ids"])
    token_type_ids = [0] * len(input_ids)
    positions = [i for i, t in enumerate(input_ids) if t == tok.mask_token_id]
    assert len(positions) == 1, (text, input_ids)
    mpos = positions[0]
    subset_tokens, subset_ids, target = subset(tok, kind)

    ids_t = torch.tensor([input_ids])
    tt_t = torch.tensor([token_type_ids])
    am_t = torch.ones_like(ids_t)

    # DistilBERT and ModernBERT have no token types.
    types = {} if kind in ("distilbert", "modernbert") else {"token_type_ids": tt_t}
    with torch.no_grad():
        ref = model(input_ids=ids_t, attention_mask=am_t, **types).logits[0, mpos]

    embeds = model.get_input_embeddings()(ids_t).detach().requires_grad_()
    out = model(
        inputs_embeds=embeds,
        attention_mask=am_t,
        output_hidden_states=True,
        **types,
    )
    logits = out.logits[0, mpos]
    assert torch.allclose(logits, ref, atol=1e-5, rtol=1e-5), "inputs_embeds path differs from input_ids path"
    loss = -F.log_softmax(logits, dim=-1)[target]
    loss.backward()

    with torch.no_grad():
        if kind == "modernbert":
            # The encoder's output after its final norm (hidden_states[-1] is the last
            # layer's, before it).
            hidden = model.model(inputs_embeds=embeds, attention_mask=am_t).last_hidden_state[0, mpos]
        else:
            hidden = out.hidden_states[-1][0, mpos]
        feats = head_features(model, kind, hidden)
        # The head transform reproduces the model's logits.
        if kind == "bert":
            dec_w = model.cls.predictions.decoder.weight
            dec_b = model.cls.predictions.decoder.bias
        elif kind == "distilbert":
            dec_w = model.vocab_projector.weight
            dec_b = model.vocab_projector.bias
        elif kind == "electra":
            dec_w = model.generator_lm_head.weight
            dec_b = model.generator_lm_head.bias
        elif kind == "albert":
            dec_w = model.predictions.decoder.weight
            dec_b = model.predictions.decoder.bias
        elif kind == "modernbert":
            dec_w = model.decoder.weight
            dec_b = model.decoder.bias
        else:
            dec_w = model.lm_head.decoder.weight
            dec_b = model.lm_head.bias
        recon = feats @ dec_w.T + dec_b
        assert torch.allclose(recon, logits, atol=1e-4, rtol=1e-4), "head transform does not reproduce logits"
        log_z = torch.logsumexp(logits, dim=-1)

    return {
        "text": text,
        "text_pair": text_pair,
        "input_ids": input_ids,
        "token_type_ids": token_type_ids,
        "mask_position": mpos,
        "subset_tokens": subset_tokens,
        "subset_ids": subset_ids,
        "subset_logits": floats(logits.detach()[subset_ids]),
        "mask_features": floats(feats),
        "log_z": float(log_z),
        "target_id": target,
        "loss": float(loss.detach()),
        "grad_inputs_embeds": floats(embeds.grad[0]),
    }


def tokenizer_texts(dev: list[str]) -> list[str]:
    picked = [dev[0]]  # raw, with GLUE's trailing space
    chosen = {0}

    def take(pred):
        for i, s in enumerate(dev):
            if i not in chosen and pred(s):
                chosen.add(i)
                picked.append(s.rstrip())
                return

    take(lambda s: any(ord(c) > 127 for c in s))  # accents (amélie)
    take(lambda s: any(ord(c) > 127 for c in s))  # more non-ASCII
    take(lambda s: any(c.isdigit() for c in s))
    take(lambda s: "-" in s)
    take(lambda s: "n't" in s)
    take(lambda s: "`" in s or "..." in s)
    for i in range(1, len(dev)):
        if len(picked) == 10:
            break
        if i not in chosen:
            chosen.add(i)
            picked.append(dev[i].rstrip())
    return picked


def write_fixture(name: str, kind: str, model, tok, model_dir: Path, dev, facts):
    mask = tok.mask_token
    texts = [f"{s.rstrip()} it was {mask} ." for s in dev[:3]]
    texts += [f"{sub} was born in {mask} ." for sub in facts]
    cases = [make_case(model, tok, kind, t) for t in texts]
    if kind == "modernbert":
        # A sentence pair (no token types: one sequence with two [SEP]s).
        first, second = read_sick_pair(SICK)
        cases.append(make_case(model, tok, kind, first, f"{second} ? {mask} ."))
    tcases = [
        {"text": t, "input_ids": list(tok(t, add_special_tokens=True)["input_ids"])}
        for t in tokenizer_texts(dev)
    ]
    fixture = {
        "model": name,
        "model_dir": os.path.relpath(model_dir, REPO),
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "dtype": "float32",
        "attn_implementation": "eager",
        "mask_token": mask,
        "mask_token_id": tok.mask_token_id,
        "cases": cases,
        "tokenizer_cases": tcases,
    }
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"{name}.json"
    with open(path, "w", encoding="utf-8") as f:
        json.dump(fixture, f, ensure_ascii=False)
        f.write("\n")
    for c in cases:
        assert math.isfinite(c["log_z"])
    print(f"wrote {os.path.relpath(path, REPO)}: {len(cases)} cases, {len(tcases)} tokenizer cases")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models-dir", default=os.environ.get("AUTOPROMPT_MODELS_DIR", str(REPO / "models")))
    ap.add_argument("--lama-dir", default="/work/shared/data/lama")
    ap.add_argument("--retrain-tiny-roberta", action="store_true")
    ap.add_argument("--retrain-tiny-distilbert", action="store_true")
    ap.add_argument("--retrain-tiny-electra", action="store_true")
    ap.add_argument("--retrain-tiny-xlmr", action="store_true")
    ap.add_argument("--retrain-tiny-albert", action="store_true")
    ap.add_argument("--retrain-tiny-modernbert", action="store_true")
    args = ap.parse_args()

    torch.set_num_threads(min(2, torch.get_num_threads()))
    dev = read_tsv_sentences(SST2_DEV)
    facts = read_p19(Path(args.lama_dir), 2)

    model, tok, path = load_splade(Path(args.models_dir))
    write_fixture("splade_tiny", "bert", model, tok, path, dev, facts)

    model, tok, path = build_tiny_roberta(args.retrain_tiny_roberta)
    write_fixture("tiny_roberta", "roberta", model, tok, path, dev, facts)

    model, tok, path = build_tiny_distilbert(args.retrain_tiny_distilbert)
    write_fixture("tiny_distilbert", "distilbert", model, tok, path, dev, facts)

    model, tok, path = build_tiny_electra(args.retrain_tiny_electra)
    write_fixture("tiny_electra", "electra", model, tok, path, dev, facts)

    model, tok, path = build_tiny_xlmr(args.retrain_tiny_xlmr)
    write_fixture("tiny_xlm_roberta", "xlm-roberta", model, tok, path, dev, facts)

    model, tok, path = build_tiny_albert(args.retrain_tiny_albert)
    write_fixture("tiny_albert", "albert", model, tok, path, dev, facts)

    model, tok, path = build_tiny_modernbert(args.retrain_tiny_modernbert)
    write_fixture("tiny_modernbert", "modernbert", model, tok, path, dev, facts)


if __name__ == "__main__":
    main()
