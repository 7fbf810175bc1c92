"""PyTorch references for `just bench`: one AutoPrompt search iteration, timed.

Two implementations on the same inputs as the Rust side (the first rows of SST-2 train,
template `[CLS] {sentence} [T]*n [P] . [SEP]`, labels 0 = "terrible", 1 = "great"). Both do
the faithful iteration's work: the embedding gradient over ``--accumulation`` batches of
``--batch-size``, then the current trigger and every candidate scored on ``--eval-batches``
(default: ``--accumulation``) fresh batches, the metric summed over those batches.

* ``reference`` — what the paper's code (``autoprompt/create_trigger.py`` of ucinlp/autoprompt)
  does: each iteration starts a new shuffled pass of the train data for the gradient
  (``iter(train_loader)``) and another for the evaluation; ``BertForMaskedLM`` full-vocabulary
  logits at every position; the embedding gradient through a backward hook on the word
  embeddings, with every weight of the model also receiving its gradient (the paper's code
  never freezes them; ``--weight-grads embeddings`` keeps only the word embeddings', which the
  hook needs); then, batch by batch, the current trigger and each candidate one at a time,
  accuracy by its ``AccuracyFn`` (log-softmax over the vocabulary at [P]).
* ``same-algorithm`` — this project's algorithm (``search::trigger::SearchState::step``) in PyTorch:
  gradient w.r.t. ``inputs_embeds`` with frozen parameters, the head applied only at [P] and
  only to the label tokens (plus the full-vocabulary normaliser for the loss); batches drawn
  from one endless stream of shuffled passes; each evaluation batch stacked with the current
  trigger and every candidate into as few forward passes as ``--eval-rows`` allows.

Prints one JSON object: median wall seconds per iteration (after warm-up), process CPU
seconds per timed iteration (``time.process_time``, every thread), candidate-examples scored
per second, peak RSS. Run by ``scripts/bench.sh``; needs torch and transformers.
"""

import argparse
import json
import random
import resource
import statistics
import time
import warnings

import torch
from transformers import AutoTokenizer, BertForMaskedLM


def read_sentences(path, n):
    rows = []
    with open(path, encoding="utf-8") as f:
        next(f)
        for line in f:
            sentence, label = line.rstrip("\n").split("\t")
            rows.append((sentence.strip(), int(label)))
            if len(rows) == n:
                break
    return rows


class Workload:
    def __init__(self, tok, rows, n_triggers, max_len=128):
        self.tok = tok
        self.mask = tok.mask_token_id
        self.pad = tok.pad_token_id
        dot = tok(".", add_special_tokens=False).input_ids
        self.examples = []
        for sentence, label in rows:
            ids = tok(sentence, add_special_tokens=False).input_ids
            ids = ids[: max_len - n_triggers - 3 - len(dot)]
            seq = [tok.cls_token_id] + ids + [self.mask] * n_triggers + [self.mask] + dot + [tok.sep_token_id]
            trig = list(range(1 + len(ids), 1 + len(ids) + n_triggers))
            self.examples.append((seq, trig, trig[-1] + 1, label))
        self.labels = [tok.convert_tokens_to_ids(w) for w in ("terrible", "great")]

    def batch(self, idx, triggers):
        seqs = [self.examples[i] for i in idx]
        width = max(len(s[0]) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad, dtype=torch.long)
        att = torch.zeros((len(seqs), width), dtype=torch.long)
        trig = torch.tensor([s[1] for s in seqs])
        pred = torch.tensor([s[2] for s in seqs])
        gold = torch.tensor([s[3] for s in seqs])
        for r, (seq, tpos, _, _) in enumerate(seqs):
            ids[r, : len(seq)] = torch.tensor(seq)
            att[r, : len(seq)] = 1
            for j, t in enumerate(triggers):
                ids[r, tpos[j]] = t
        return ids, att, trig, pred, gold


def reference_accuracy(predict_logits, gold, labels):
    """The reference's ``AccuracyFn`` for one-token labels: the gold label's loss (negative
    log-probability over the whole vocabulary) must be the strict minimum."""
    logp = torch.log_softmax(predict_logits, -1)
    all_label_loss = -logp[:, labels]  # [B, classes]
    gold_loss = all_label_loss.gather(1, gold[:, None])
    return (all_label_loss.le(gold_loss).sum(-1) <= 1).float()


def reference_iteration(model, w, triggers, grad_batches, eval_batches, k, slot):
    """The paper's loop: hook gradient, full logits everywhere, one candidate at a time, the
    current trigger and every candidate scored on every evaluation batch (metric summed)."""
    emb = model.get_input_embeddings()
    labels = torch.tensor(w.labels)
    store = {}

    def hook(module, grad_in, grad_out):
        store["g"] = grad_out[0]

    def predict_logits(idx, ids, att, pred):
        logits = model(input_ids=ids, attention_mask=att).logits  # [B, S, V]
        return logits[torch.arange(len(idx)), pred]

    # The hook sees the gradient w.r.t. the embeddings' output (the token ids need none), which
    # is what it is for; torch warns about exactly that on every backward.
    warnings.filterwarnings("ignore", message="Full backward hook is firing when gradients are computed")
    handle = emb.register_full_backward_hook(hook)
    model.zero_grad()
    averaged = 0
    for idx in grad_batches:
        ids, att, trig, pred, gold = w.batch(idx, triggers)
        lp = torch.log_softmax(predict_logits(idx, ids, att, pred), -1)[:, labels]
        loss = -lp.gather(1, gold[:, None]).mean()
        loss.backward()
        g = store["g"][torch.arange(len(idx))[:, None], trig]  # [B, T, H]
        averaged = averaged + g.sum(0) / len(grad_batches)
    handle.remove()
    with torch.no_grad():
        scores = -(emb.weight @ averaged[slot])
        candidates = scores.topk(k).indices.tolist()
        current, candidate_scores, scored = 0.0, [0.0] * len(candidates), 0
        for idx in eval_batches:
            ids, att, trig, pred, gold = w.batch(idx, triggers)
            current += reference_accuracy(predict_logits(idx, ids, att, pred), gold, labels).sum().item()
            for i, c in enumerate(candidates):
                tmp = ids.clone()
                tmp[torch.arange(len(idx)), trig[:, slot]] = c
                candidate_scores[i] += reference_accuracy(predict_logits(idx, tmp, att, pred), gold, labels).sum().item()
            scored += len(candidates) * len(idx)
    return current, scored


def same_algorithm_iteration(model, w, triggers, grad_batches, eval_batches, k, slot, eval_rows):
    """Batched: inputs_embeds gradient, head only at [P] on label tokens, and each evaluation
    batch stacked with every candidate (the metric of each variant summed over batches)."""
    bert = model.bert
    transform = model.cls.predictions.transform
    decoder_w = model.get_input_embeddings().weight
    decoder_b = model.cls.predictions.bias
    labels = torch.tensor(w.labels)
    grad = 0
    for idx in grad_batches:
        ids, att, trig, pred, gold = w.batch(idx, triggers)
        embeds = bert.embeddings.word_embeddings(ids).detach().requires_grad_()
        hidden = bert(inputs_embeds=embeds, attention_mask=att).last_hidden_state
        feats = transform(hidden[torch.arange(len(idx)), pred])
        logz = torch.logsumexp(feats @ decoder_w.T + decoder_b, -1)
        gold_logit = (feats @ decoder_w[labels].T + decoder_b[labels]).gather(1, gold[:, None])[:, 0]
        loss = -(gold_logit - logz).mean()
        (g,) = torch.autograd.grad(loss, embeds)
        grad = grad + g[torch.arange(len(idx))[:, None], trig].sum(0)
    with torch.no_grad():
        scores = -(decoder_w @ grad[slot])
        candidates = scores.topk(k).indices.tolist()
        correct, scored = 0, 0
        for idx in eval_batches:
            ids, att, trig, pred, gold = w.batch(idx, triggers)
            variants = [ids]
            for c in candidates:
                tmp = ids.clone()
                tmp[torch.arange(len(idx)), trig[:, slot]] = c
                variants.append(tmp)
            stacked = torch.cat(variants)
            att_all = att.repeat(len(variants), 1)
            pred_all = pred.repeat(len(variants))
            out = []
            for s in range(0, stacked.shape[0], eval_rows):
                h = bert(input_ids=stacked[s : s + eval_rows], attention_mask=att_all[s : s + eval_rows]).last_hidden_state
                f = transform(h[torch.arange(h.shape[0]), pred_all[s : s + eval_rows]])
                out.append(f @ decoder_w[labels].T + decoder_b[labels])
            hits = (torch.cat(out).argmax(-1) == gold.repeat(len(variants))).view(len(variants), -1).sum(1)
            correct = correct + hits
            scored += len(candidates) * len(idx)
    return correct[0].item(), scored


def fresh_pass(rng, n, batch_size, batches):
    """The first ``batches`` batches of a new shuffled pass (a fresh ``iter(train_loader)``
    with ``shuffle=True``); fewer when the pass runs out, as the reference then stops."""
    order = rng.sample(range(n), n)
    out = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    return out[:batches]


class BatchStream:
    """This project's draw (``search::trigger::BatchStream``): endless shuffled passes, a batch
    continuing where the previous one stopped."""

    def __init__(self, n, rng):
        self.n, self.rng, self.order, self.cursor = n, rng, [], n

    def next(self, size):
        out = []
        while len(out) < min(size, self.n):
            if self.cursor >= self.n:
                self.order = self.rng.sample(range(self.n), self.n)
                self.cursor = 0
            out.append(self.order[self.cursor])
            self.cursor += 1
        return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True, help="SST-2 train.tsv")
    p.add_argument("--mode", choices=["reference", "same-algorithm"], required=True)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--accumulation", type=int, default=10)
    p.add_argument("--eval-batches", type=int, default=None,
                   help="fresh batches each candidate is scored on (default: --accumulation, as the paper's code)")
    p.add_argument("--candidates", type=int, default=10)
    p.add_argument("--triggers", type=int, default=3)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--eval-rows", type=int, default=256)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--attention", choices=["eager", "sdpa"], default="eager",
                   help="transformers' attention kernel (eager: the paper-era implementation)")
    p.add_argument("--weight-grads", choices=["all", "embeddings"], default="all",
                   help="reference mode: which weights receive a gradient (all: as the paper's code, "
                        "which never freezes the model; embeddings: only the word embeddings, for the hook)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(a.model)
    model = BertForMaskedLM.from_pretrained(a.model, attn_implementation=a.attention).eval()
    for param in model.parameters():
        param.requires_grad_(False)
    reference = a.mode == "reference"
    if reference:
        for param in (model.parameters() if a.weight_grads == "all" else [model.get_input_embeddings().weight]):
            param.requires_grad_(True)
    eval_batches = max(1, a.eval_batches if a.eval_batches is not None else a.accumulation)
    rows = read_sentences(a.data, 512)
    w = Workload(tok, rows, a.triggers)
    rng = random.Random(0)
    stream = BatchStream(len(rows), rng)
    triggers = [tok.mask_token_id] * a.triggers
    times, cpu, scored = [], 0.0, 0
    for it in range(a.warmup + a.iters):
        if reference:
            grad_batches = fresh_pass(rng, len(rows), a.batch_size, a.accumulation)
            slot = rng.randrange(a.triggers)
            eval_idx = fresh_pass(rng, len(rows), a.batch_size, eval_batches)
        else:
            grad_batches = [stream.next(a.batch_size) for _ in range(a.accumulation)]
            slot = rng.randrange(a.triggers)
            eval_idx = [stream.next(a.batch_size) for _ in range(eval_batches)]
        t0, c0 = time.perf_counter(), time.process_time()
        if reference:
            _, n = reference_iteration(model, w, triggers, grad_batches, eval_idx, a.candidates, slot)
        else:
            _, n = same_algorithm_iteration(model, w, triggers, grad_batches, eval_idx, a.candidates, slot, a.eval_rows)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        if it >= a.warmup:
            times.append(dt)
            cpu += dc
            scored += n
    median = statistics.median(times)
    print(json.dumps({
        "implementation": f"pytorch-{a.mode}" + ("" if a.attention == "eager" else f"+{a.attention}")
        + ("+frozen-weights" if reference and a.weight_grads != "all" else ""),
        "median_seconds": median,
        "cpu_s_per_iteration": cpu / len(times),
        "candidate_examples_per_second": scored / sum(times),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(),
        "batch_size": a.batch_size,
        "triggers": a.triggers,
        "iters": len(times),
        "eval_batches": eval_batches,
        **({"weight_grads": a.weight_grads} if reference else {}),
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
