"""PyTorch references for `just bench`: one AutoPrompt search iteration, timed.

Two implementations on the same inputs as the Rust side (the first rows of SST-2 train,
template `[CLS] {sentence} [T]*n [P] . [SEP]`, labels 0 = "terrible", 1 = "great"):

* ``reference`` — what the paper's code does: ``BertForMaskedLM`` full-vocabulary logits at
  every position, the embedding gradient through a backward hook on the word embeddings,
  candidates evaluated one at a time.
* ``same-algorithm`` — this project's algorithm in PyTorch: gradient w.r.t. ``inputs_embeds``
  with frozen parameters, the head applied only at [P] and only to the label tokens (plus the
  full-vocabulary normaliser for the loss), all candidates × examples stacked into as few
  forward passes as ``--eval-rows`` allows.

Prints one JSON object: median seconds per iteration (after warm-up), candidate-examples
scored per second, peak RSS. Run by ``scripts/bench.sh``; needs torch and transformers.
"""

import argparse
import json
import random
import resource
import statistics
import time

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


def class_log_probs(log_probs_at_p, labels):
    return log_probs_at_p[:, labels]


def reference_iteration(model, w, triggers, batches, eval_idx, k, slot):
    """The paper's loop: hook gradient, full logits everywhere, one candidate at a time."""
    emb = model.get_input_embeddings()
    store = {}

    def hook(module, grad_in, grad_out):
        store["g"] = grad_out[0]

    handle = emb.register_full_backward_hook(hook)
    averaged = 0
    for idx in batches:
        ids, att, trig, pred, gold = w.batch(idx, triggers)
        logits = model(input_ids=ids, attention_mask=att).logits  # [B, S, V]
        at_p = logits[torch.arange(len(idx)), pred]
        lp = torch.log_softmax(at_p, -1)[:, w.labels]
        loss = -lp.gather(1, gold[:, None]).mean()
        loss.backward()
        g = store["g"][torch.arange(len(idx))[:, None], trig]  # [B, T, H]
        averaged = averaged + g.sum(0) / len(batches)
    handle.remove()
    scores = -(emb.weight @ averaged[slot])
    candidates = scores.topk(k).indices.tolist()
    ids, att, trig, pred, gold = w.batch(eval_idx, triggers)
    with torch.no_grad():
        def metric(ids):
            logits = model(input_ids=ids, attention_mask=att).logits
            at_p = logits[torch.arange(len(eval_idx)), pred][:, w.labels]
            return (at_p.argmax(-1) == gold).sum().item()

        current = metric(ids)
        for c in candidates:
            tmp = ids.clone()
            tmp[torch.arange(len(eval_idx)), trig[:, slot]] = c
            metric(tmp)
    return current, len(candidates) * len(eval_idx)


def same_algorithm_iteration(model, w, triggers, batches, eval_idx, k, slot, eval_rows):
    """Batched: inputs_embeds gradient, head only at [P] on label tokens, stacked candidates."""
    bert = model.bert
    transform = model.cls.predictions.transform
    decoder_w = model.get_input_embeddings().weight
    decoder_b = model.cls.predictions.bias
    labels = torch.tensor(w.labels)
    grad = 0
    for idx in batches:
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
        ids, att, trig, pred, gold = w.batch(eval_idx, triggers)
        variants = [ids]
        for c in candidates:
            tmp = ids.clone()
            tmp[torch.arange(len(eval_idx)), trig[:, slot]] = c
            variants.append(tmp)
        stacked = torch.cat(variants)
        att_all = att.repeat(len(variants), 1)
        pred_all = pred.repeat(len(variants))
        out = []
        for s in range(0, stacked.shape[0], eval_rows):
            h = bert(input_ids=stacked[s : s + eval_rows], attention_mask=att_all[s : s + eval_rows]).last_hidden_state
            f = transform(h[torch.arange(h.shape[0]), pred_all[s : s + eval_rows]])
            out.append(f @ decoder_w[labels].T + decoder_b[labels])
        correct = (torch.cat(out).argmax(-1) == gold.repeat(len(variants))).view(len(variants), -1).sum(1)
    return correct[0].item(), len(candidates) * len(eval_idx)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True, help="SST-2 train.tsv")
    p.add_argument("--mode", choices=["reference", "same-algorithm"], required=True)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--accumulation", type=int, default=10)
    p.add_argument("--candidates", type=int, default=10)
    p.add_argument("--triggers", type=int, default=3)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--eval-rows", type=int, default=256)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--attention", choices=["eager", "sdpa"], default="eager",
                   help="transformers' attention kernel (eager: the paper-era implementation)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(a.model)
    model = BertForMaskedLM.from_pretrained(a.model, attn_implementation=a.attention).eval()
    for param in model.parameters():
        param.requires_grad_(False)
    if a.mode == "reference":
        model.get_input_embeddings().weight.requires_grad_(True)
    rows = read_sentences(a.data, 512)
    w = Workload(tok, rows, a.triggers)
    rng = random.Random(0)
    triggers = [tok.mask_token_id] * a.triggers
    times, scored = [], 0
    for it in range(a.warmup + a.iters):
        order = rng.sample(range(len(rows)), a.batch_size * (a.accumulation + 1))
        batches = [order[i * a.batch_size : (i + 1) * a.batch_size] for i in range(a.accumulation)]
        eval_idx = order[a.accumulation * a.batch_size :]
        slot = rng.randrange(a.triggers)
        t0 = time.perf_counter()
        if a.mode == "reference":
            _, n = reference_iteration(model, w, triggers, batches, eval_idx, a.candidates, slot)
        else:
            _, n = same_algorithm_iteration(model, w, triggers, batches, eval_idx, a.candidates, slot, a.eval_rows)
        dt = time.perf_counter() - t0
        if it >= a.warmup:
            times.append(dt)
            scored += n
    median = statistics.median(times)
    print(json.dumps({
        "implementation": f"pytorch-{a.mode}" + ("" if a.attention == "eager" else f"+{a.attention}"),
        "median_seconds": median,
        "candidate_examples_per_second": scored / sum(times),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
