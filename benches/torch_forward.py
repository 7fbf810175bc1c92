"""Encoder forward of a BERT-style or ModernBERT model in PyTorch at batch x seq (random token ids), for
`just bench`: the same workload as `autoprompt bench forward` (the full encoder at every
token, no MLM head, no pooler), and PyTorch's own 2048x2048 float32 matmul, printed as one
JSON line.

With --gradient, the trigger-gradient pass of `autoprompt bench forward --gradient` instead:
the encoder forward from input embeddings that require a gradient (every weight frozen), the
MLM head's transform at each row's last token (standing for its [P]), and the gradient of the
features' sum with respect to the input embeddings (torch.autograd.grad: no weight gradients),
as this project's algorithm does in PyTorch (benches/torch_search.py --mode same-algorithm)."""
import argparse
import json
import statistics
import time

import torch
from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM


# What `gflop` counts, word for word as `bench::FULL_ENCODER` on the Rust side.
FULL_ENCODER = "full encoder: every layer at every token; no MLM head, no pooler"
# What --gradient counts, word for word as `bench::GRADIENT_PASS`.
GRADIENT_PASS = "trigger-gradient pass: encoder forward, head at [P], backward to the input embeddings; counted as 2 x the full encoder"


def encoder_flops(config, batch, seq):
    """FLOPs of one encoder forward (as `bench::encoder_flops` in Rust): projections,
    attention, feed-forward (two h x i matrices; three in ModernBERT's GeGLU), at every token
    of every layer."""
    tokens = batch * seq
    h, i = config.hidden_size, config.intermediate_size
    ffn_matrices = 3 if config.model_type == "modernbert" else 2
    return config.num_hidden_layers * (tokens * (8 * h * h + 2 * ffn_matrices * h * i) + 4 * batch * seq * seq * h)


def gradient_pass(path, device, ids):
    """One trigger-gradient pass as a function of no arguments (see the module doc)."""
    model = AutoModelForMaskedLM.from_pretrained(path).eval().to(device)
    for param in model.parameters():
        param.requires_grad_(False)
    encoder = model.base_model
    # BERT-style heads keep the transform under cls.predictions; ModernBERT's is `head`.
    transform = model.cls.predictions.transform if hasattr(model, "cls") else model.head
    embeddings = model.get_input_embeddings()
    rows = torch.arange(ids.shape[0], device=device)

    def step():
        embeds = embeddings(ids).detach().requires_grad_()
        hidden = encoder(inputs_embeds=embeds).last_hidden_state
        features = transform(hidden[rows, -1])
        (grad,) = torch.autograd.grad(features.sum(), embeds)
        return grad

    return step


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda (timings synchronise the device)")
    p.add_argument("--gradient", action="store_true", help="time the trigger-gradient pass instead of the forward")
    a = p.parse_args()
    device = torch.device(a.device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    if a.threads:
        torch.set_num_threads(a.threads)
    config = AutoConfig.from_pretrained(a.model)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, config.vocab_size, (a.batch, a.seq), generator=g).to(device)
    if a.gradient:
        step = gradient_pass(a.model, device, ids)
    else:
        # No pooler: the Rust side runs (and the FLOP count covers) the encoder only.
        # (ModernBERT's encoder has none to leave out.)
        pooler = {} if config.model_type == "modernbert" else {"add_pooling_layer": False}
        model = AutoModel.from_pretrained(a.model, **pooler).eval().to(device)

        def step():
            with torch.no_grad():
                model(input_ids=ids)

    times = []
    step()
    sync()
    for _ in range(a.iters):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    secs = statistics.median(times)
    n = 2048
    x, y = torch.randn(n, n, generator=g).to(device), torch.randn(n, n, generator=g).to(device)
    x @ y
    sync()
    mm = []
    for _ in range(5):
        t0 = time.perf_counter()
        x @ y
        sync()
        mm.append(time.perf_counter() - t0)
    gflop = (2 if a.gradient else 1) * encoder_flops(config, a.batch, a.seq) / 1e9
    print(json.dumps({
        "implementation": "pytorch" if device.type == "cpu" else f"pytorch-{device.type}",
        "batch": a.batch,
        "seq": a.seq,
        "median_seconds": secs,
        "gflop": gflop,
        "flops_of": GRADIENT_PASS if a.gradient else FULL_ENCODER,
        "gflops_per_second": gflop / secs,
        "backend_sgemm_gflops_per_second": 2 * n**3 / statistics.median(mm) / 1e9,
    }))


if __name__ == "__main__":
    main()
